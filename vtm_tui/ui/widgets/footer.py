"""The footer: Textual's Footer, on two rows when one is too narrow for every key.

At 80 columns (tmux over SSH) a tab with many actions does not fit on one row: Textual's footer
then scrolls, and the keys past the edge (or under the command palette's key, docked right) are
out of sight. This footer measures itself after each layout: when the keys overflow, it shows
the tab's own keys on the first row and the app's (tab switching, quit) on the second, with the
command palette's key docked right there, both in Textual's compact style; when one row fits
again, it goes back to one.
The keys are made as Textual's Footer.compose makes them (textual/widgets/_footer.py, 8.x):
grouped keys in a KeyGroup with the group's label, the others one FooterKey each.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import groupby

from textual.containers import HorizontalGroup
from textual.reactive import reactive
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup


class VtmFooter(Footer):
    DEFAULT_CSS = """
    VtmFooter.-two-rows {
        layout: vertical;
        height: 2;
    }
    VtmFooter HorizontalGroup.footer-row {
        height: 1;
        width: 1fr;
        padding-left: 1;
    }
    VtmFooter.-compact FooterLabel {
        margin: 0 1 0 0;
    }
    """

    two_rows = reactive(False, recompose=True, toggle_class="-two-rows")
    """The tab's keys on one row, the app's on another."""

    def compose(self):
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        shown = [(node, binding, enabled, tooltip) for node, binding, enabled, tooltip in active.values()
                 if binding.show]
        if self.two_rows:
            with HorizontalGroup(classes="footer-row"):
                yield from self._keys([entry for entry in shown if entry[0] is not self.app])
            with HorizontalGroup(classes="footer-row"):
                yield from self._keys([entry for entry in shown if entry[0] is self.app])
                yield from self._palette_key(active)  # docked right in the second row
        else:
            yield from self._keys(shown)
            yield from self._palette_key(active)

    def _palette_key(self, active):
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            entry = active.get(self.app.COMMAND_PALETTE_BINDING)
            if entry is not None:
                _node, binding, enabled, tooltip = entry
                yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description,
                                binding.action, classes="-command-palette", disabled=not enabled,
                                tooltip=binding.tooltip or binding.description)

    def watch_two_rows(self, two_rows: bool) -> None:
        self.compact = two_rows  # Textual's compact style: one space less around each key

    def _keys(self, shown):
        by_action: defaultdict[str, list] = defaultdict(list)
        for _node, binding, enabled, tooltip in shown:
            by_action[binding.action].append((binding, enabled, tooltip))
        for group, items in groupby(by_action.values(), lambda entries: entries[0][0].group):
            items = list(items)
            if group is not None and len(items) > 1:
                with KeyGroup(classes="-compact" if group.compact else ""):
                    for binding, enabled, tooltip in (entries[0] for entries in items):
                        yield FooterKey(binding.key, self.app.get_key_display(binding), "", binding.action,
                                        disabled=not enabled, tooltip=tooltip or binding.description,
                                        classes="-grouped").data_bind(compact=Footer.compact)
                yield FooterLabel(group.description)
            else:
                for binding, enabled, tooltip in (entries[0] for entries in items):
                    yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description,
                                    binding.action, disabled=not enabled,
                                    tooltip=tooltip).data_bind(compact=Footer.compact)

    _generation = 0  # counts binding changes: a fit measured for older keys is dropped

    def bindings_changed(self, screen) -> None:
        self._generation += 1
        self.set_reactive(VtmFooter.two_rows, False)  # other keys: try one row first
        self.remove_class("-two-rows")
        super().bindings_changed(screen)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit, self._generation)

    async def recompose(self) -> None:
        generation = self._generation
        await super().recompose()
        self.call_after_refresh(self._fit, generation)

    def _fit(self, generation: int, tries: int = 20) -> None:
        if generation != self._generation:  # the keys changed since: their own fit follows
            return
        palette = next(iter(self.query(".-command-palette")), None)
        keys = [child for child in self.children if child is not palette and child.display]
        if any(not child.region.width for child in [*keys, *([palette] if palette else [])]):
            if tries:  # not laid out yet
                self.call_after_refresh(self._fit, generation, tries - 1)
            return
        if not self.two_rows:
            # Widths, not positions: a key laid out before its siblings moved is not an overflow.
            needed = (sum(child.region.width + child.styles.margin.left + child.styles.margin.right
                          for child in keys) + self.styles.padding.left
                      + (palette.region.width if palette is not None else 0))
            if needed > self.region.width:
                self._one_row_width = needed
                self.two_rows = True
        elif self.size.width >= getattr(self, "_one_row_width", 1 << 30):
            self.two_rows = False

    @property
    def keys_shown(self) -> list[FooterKey]:
        """Every key the footer shows (for tests: their regions say whether they are in sight)."""
        return list(self.query(FooterKey))
