"""Command palette source: the actions of the current tab (and the app's), as in the footer."""
from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from vtm_tui.ui.tabs.base import VtmPane


class TabActionsProvider(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        """(name, help, callback) for every binding shown in the footer of the calling screen."""
        commands, seen = [], set()
        for active in self.screen.active_bindings.values():
            binding, node = active.binding, active.node
            if not binding.show or not active.enabled or (node, binding.action) in seen:
                continue
            seen.add((node, binding.action))
            where = node.tab_title if isinstance(node, VtmPane) else "vtm" if node is self.app else ""
            help_text = f"{self.app.get_key_display(binding)}" + (f" · {where}" if where else "")
            commands.append((binding.description, help_text, partial(node.run_action, binding.action)))
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
