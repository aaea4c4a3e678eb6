"""The vtm app: a status header, five tabs, a footer. Thin on purpose: each tab is its own
package (a VtmPane, see tabs/base.py) and does its own work; the app only routes messages
between them."""
from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import TabbedContent, TabPane, Tabs

from vtm_tui.settings import Settings
from vtm_tui.ui.messages import CatalogLoaded, CloneRequested, RunLaunched
from vtm_tui.ui.palette import TabActionsProvider
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.mlflow_ops.pane import MlflowOpsPane
from vtm_tui.ui.tabs.registry.pane import RegistryPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.tabs.serving.pane import ServingPane
from vtm_tui.ui.widgets.footer import VtmFooter
from vtm_tui.ui.widgets.status_header import StatusHeader

TABS = Binding.Group("Tabs", compact=True)


class VtmApp(App[int]):
    # What the tabs share, then each tab's own rules (in the order they were once one file:
    # where two rules tie, the later wins).
    CSS_PATH = ["app.tcss", "tabs/launcher/launcher.tcss", "tabs/runs/runs.tcss", "screens/screens.tcss",
                "tabs/mlflow_ops/mlflow_ops.tcss", "tabs/serving/serving.tcss", "tabs/registry/registry.tcss"]
    TITLE = "vtm"
    # Start in the task list, never on the tab strip: focusing a widget in a pane also makes
    # that pane the active tab, so an early focus elsewhere could undo a tab key.
    AUTO_FOCUS = "#task-list"
    COMMANDS = App.COMMANDS | {TabActionsProvider}
    BINDINGS = [
        Binding("1", "show_tab('launcher')", "Launcher", id="app.tab.launcher", group=TABS),
        Binding("2", "show_tab('runs')", "Runs", id="app.tab.runs", group=TABS),
        Binding("3", "show_tab('mlflow-ops')", "MLflow Ops", id="app.tab.mlflow_ops", group=TABS),
        Binding("4", "show_tab('registry')", "Registry", id="app.tab.registry", group=TABS),
        Binding("5", "show_tab('serving')", "Serving", id="app.tab.serving", group=TABS),
        # The host view (GPUs, who holds them, the queue) is a screen over the tabs, not a tab.
        Binding("h", "host_view", "Host", id="app.host", tooltip="GPUs, who holds them, the queue"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, settings: Settings, sources: Sources | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.sources = sources or Sources()
        self._wanted_tab: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(self.settings, self.sources, id="status-header")
        with TabbedContent(initial="launcher", id="tabs"):
            yield LauncherPane(self.settings, self.sources)
            yield RunsPane(self.settings, self.sources)
            yield MlflowOpsPane(self.settings, self.sources)
            yield RegistryPane(self.settings, self.sources)
            yield ServingPane(self.settings, self.sources)
        yield VtmFooter()

    def on_mount(self) -> None:
        # Keys 1-5 switch tabs, so the tab strip need not take focus: focus stays inside the
        # active pane, whose keys (launch, cancel, ...) are then live and in the footer.
        self.query_one(Tabs).can_focus = False
        self.call_after_refresh(self._focus_active_pane)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    @property
    def active_pane(self) -> TabPane | None:
        return self.tabs.active_pane

    def _focus_active_pane(self) -> None:
        pane = self.active_pane
        if isinstance(pane, VtmPane):
            pane.focus_default()

    def action_show_tab(self, tab: str) -> None:
        self._wanted_tab = tab
        if self.tabs.active != tab:
            # Let go of focus first: a focused widget hidden with its pane hands focus to a sibling
            # in that pane (Textual's focus reset), which would make the old tab active again.
            self.screen.set_focus(None)
        self.tabs.active = tab

    def action_host_view(self) -> None:
        from vtm_tui.ui.screens.host_view import HostScreen

        self.push_screen(HostScreen(self.settings, self.sources))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("show_tab", "host_view") and len(self.screen_stack) > 1:
            return False  # not behind a modal or the full-screen log
        return True

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self._wanted_tab and event.pane.id != self._wanted_tab:
            # The tab strip's own start-up activation arrived after a key pressed while the
            # app was still starting: the key wins.
            self.tabs.active = self._wanted_tab
            return
        self._wanted_tab = None
        self.call_after_refresh(self._focus_active_pane)

    def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        if message.catalog is not None:
            for pane in self.query(VtmPane):
                pane.set_catalog(message.catalog)

    def on_run_launched(self, message: RunLaunched) -> None:
        self.action_show_tab("runs")
        self.query_one(RunsPane).select_run(message.run.id)
        self.notify(f"Run {message.run.id} ({message.run.task}) started", markup=False)

    async def on_clone_requested(self, message: CloneRequested) -> None:
        self.action_show_tab("launcher")
        await self.query_one(LauncherPane).edit_run(message.run)


def run_app(settings: Settings) -> int:
    """`vtm` with no arguments. Runs keep going after the app exits: they are detached."""
    app = VtmApp(settings)
    app.run()
    return app.return_code or 0
