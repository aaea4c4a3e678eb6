"""Registry tab: browse the model registry (models -> stages -> versions, the manifest of the
one under the cursor) and pull, promote, publish, convert, with progress and cancel.

Every registry call runs in a thread worker on a Registry of its own (core's rule: one per
thread). Reading the tree and a transfer are separate workers (the transfer's is the transfer
bar's), so the tree can be refreshed while a pull runs. A registry that cannot be reached shows as
a status line in the tab; nothing here ever blocks the screen.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static, Tree
from textual.worker import get_current_worker

from vtm_tui.core.formatting import display_path, redact_url
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.screens.registry_dialogs import (
    BestRequest,
    ConvertDialog,
    PublishBestDialog,
    PublishDialog,
    PublishRequest,
    PullDialog,
)
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.status_styles import NOTE
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.registry import jobs
from vtm_tui.ui.tabs.registry.detail import RegistryDetail
from vtm_tui.ui.tabs.registry.password import PasswordPrompt
from vtm_tui.ui.tabs.registry.transfer import TransferBar
from vtm_tui.ui.tabs.registry.tree import Listing, NodeRef, RegistryTree, read_listing

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Catalog
    from vtm_tui.core.registry import Registry, VersionInfo

PUBLISH = Binding.Group("Publish", compact=True)
TRANSFERS = ("pull", "promote", "publish_file", "publish_best", "convert")
DEFAULT_DESTINATION = "./downloads"


def registry_display(settings: Settings) -> str:
    """The registry as the header names it: a folder relative to the working directory, or
    the URL without its password."""
    url = settings.registry_url
    if not url:
        return display_path(settings.home / "registry", settings.workdir)
    if "://" not in url or url.lower().startswith("file://"):
        path = Path(unquote(urlsplit(url).path) if "://" in url else url).expanduser()
        return display_path(path if path.is_absolute() else settings.workdir / path, settings.workdir)
    return redact_url(url)


def _read_catalog(settings: Settings) -> Catalog | None:
    """The catalog for titles, destinations and tasks; None when it is broken (the Launcher
    tab shows why)."""
    from vtm_tui.core.catalog.loader import load_catalog

    try:
        return load_catalog(settings.catalog_path)
    except Exception:
        return None


class RegistryPane(VtmPane):
    BODY = "#registry-tree"
    BINDINGS = [
        Binding("p", "pull", "Pull", id="registry.pull", tooltip="Download, verify and unpack the version"),
        Binding("m", "promote", "Promote", id="registry.promote", tooltip="Copy a dev version to release"),
        Binding("u", "publish_file", "Publish file", id="registry.publish_file", group=PUBLISH,
                tooltip="Publish a local .pth/.pt checkpoint"),
        Binding("b", "publish_best", "Publish best run", id="registry.publish_best", group=PUBLISH,
                tooltip="Publish the best MLflow run of a catalog task"),
        Binding("s", "convert", "Convert to standard", id="registry.convert", group=PUBLISH,
                tooltip="Publish the version again with model-standard.pt2 (a torch.export program) added"),
        Binding("c", "cancel_transfer", "Cancel", id="registry.cancel", tooltip="Cancel the transfer"),
        Binding("r", "refresh", "Refresh", id="registry.refresh"),
    ]

    @dataclass
    class Listed(Message):
        """A read of the registry: the listing, or why there is none."""
        listing: Listing | None
        error: str | None
        select: NodeRef | None
        catalog: Catalog | None  # read even when the registry cannot be

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("Registry", "registry", settings, sources)
        self.url_text = registry_display(settings)
        self.listing: Listing | None = None
        self.error: str | None = None
        # Read by each listing's worker, not handed over by the app: the tree's titles and
        # defaults must come from the catalog as it was when the registry was read.
        self.catalog: Catalog | None = None
        self.reading = False
        self.loads = 0  # reads started
        self._listed = False  # a listing was shown: the first one expands everything
        self._status_kind = ""
        self._last_publish = PublishRequest("", "")
        self._last_best: BestRequest | None = None
        self.ftp_password = PasswordPrompt(self, self.url_text)

    def compose(self) -> ComposeResult:
        main = Horizontal(RegistryTree(self.url_text, id="registry-tree"), RegistryDetail(id="registry-detail"),
                          id="registry-main")
        # Mounted just after the first frame, like the Runs tab: the tab is hidden at start.
        yield Lazy(Vertical(main, TransferBar(id="registry-transfer"), Static(id="registry-status"),
                            id="registry-body"))

    # -- state -----------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Read, and nothing running: what snapshot tests wait for."""
        return self.ready and not self.reading and not self.busy

    @property
    def busy(self) -> bool:
        """A transfer is running (one at a time)."""
        return self.built and self.transfer.busy

    @property
    def tree(self) -> RegistryTree:
        return self.query_one("#registry-tree", RegistryTree)

    @property
    def transfer(self) -> TransferBar:
        return self.query_one(TransferBar)

    def load(self) -> None:
        self._start_load()

    def default_focus(self) -> Widget:
        return self.tree

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_transfer":
            return self.busy
        if action in TRANSFERS and self.busy:
            return None  # shown, greyed: one transfer at a time
        return True

    def _status(self, text: str, kind: str = "info") -> None:
        self._status_kind = kind if text else ""
        if not self.built:
            return
        icon, style = NOTE.icon(kind), NOTE.style(kind)
        status = self.query_one("#registry-status", Static)
        status.update(Text.assemble((icon, style), (text, style if kind == "error" else "")))
        status.display = bool(text)
        status.set_class(kind == "error", "-error")

    # -- reading the registry --------------------------------------------------------------

    @contextmanager
    def _registry(self) -> Iterator[Registry]:
        """A Registry for one worker; a password the server refused is forgotten (asked again)."""
        from vtm_tui.core.registry import AuthError, open_registry

        try:
            with open_registry(self.settings, password=self.ftp_password, interactive=False) as registry:
                yield registry
        except AuthError:
            self.ftp_password.forget()
            raise

    def _start_load(self, select: NodeRef | None = None, *, announce: bool = True) -> None:
        """announce: say "Reading…" in the status line (not after an action: its result stays)."""
        if announce:
            self._status("Reading the registry…", "reading")
        self.loads += 1
        self.reading = True
        self._load(select)

    @work(thread=True, exclusive=True, group="registry-read")
    def _load(self, select: NodeRef | None) -> None:
        worker = get_current_worker()
        catalog = _read_catalog(self.settings)
        try:
            with self._registry() as registry:
                listing = read_listing(registry, self.url_text, catalog)
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(self.Listed(None, error_text(exc), select, catalog))
            return
        if not worker.is_cancelled:  # a newer read is on its way
            self.post_message(self.Listed(listing, None, select, catalog))

    def on_registry_pane_listed(self, message: Listed) -> None:
        self.reading = False
        self.catalog = message.catalog
        tree = self.tree
        select = message.select or tree.cursor_ref
        if message.listing is None:
            self.listing, self.error = None, message.error
            tree.show_error(self.url_text)
            self.query_one(RegistryDetail).show(Text.assemble(
                ("The registry cannot be read.\n\n", "bold"), (message.error or "", "red"),
                "\n\nCheck VTM_REGISTRY_URL (or the header's registry), the server and the network; "
                "press r to try again."))
            self._status(f"Registry unreachable: {message.error}  (r: retry)", "error")
        else:
            first, self._listed = not self._listed, True
            self.listing, self.error = message.listing, None
            tree.show_listing(message.listing, select, first=first)
            self._show_detail()
            if self._status_kind in ("reading", "error"):
                self._status("")
        self.mark_ready()

    @on(Tree.NodeHighlighted, "#registry-tree")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        self.query_one(RegistryDetail).show_ref(self.listing, self.tree.cursor_ref, self.sources.clock())

    def action_refresh(self) -> None:
        if self.built:
            self._start_load(self.tree.cursor_ref)

    # -- choosing what to act on -----------------------------------------------------------

    def _target(self, prefer_stage: str | None = None) -> VersionInfo | None:
        """The version under the cursor; for a stage, its LATEST; for a model, the LATEST of
        `prefer_stage`, else of the catalog's default stage (its default version if pinned)."""
        ref = self.tree.cursor_ref if self.built else None
        model = self.listing.model(ref.model) if self.listing and ref else None
        if model is None:
            self.notify("Select a model or a version in the tree first", severity="warning")
            return None
        if ref.version is not None:
            return self.listing.info(ref)
        entry = model.entry
        stage = ref.stage or next((s for s in (prefer_stage, entry and entry.default_stage) if s in model.stages),
                                  next(iter(model.stages), None))
        info = model.latest(stage) if stage else None
        if ref.stage is None and entry and stage == entry.default_stage and entry.default_version.isdigit():
            info = model.version(stage, int(entry.default_version)) or info
        if info is None:
            self.notify(f"{model.name}/{stage or '-'} has no version yet", severity="warning", markup=False)
        return info

    def _refused_while_busy(self) -> bool:
        """One transfer at a time: True (and a notice) while one runs."""
        if self.busy:
            self.notify(f"{self.transfer.job.title} is running: wait for it or cancel it (c)", severity="warning",
                        markup=False)
        return self.busy

    def _model_names(self) -> list[str]:
        names = [model.name for model in self.listing.models] if self.listing else []
        extra = [entry.model_name for entry in self.catalog.registry_models] if self.catalog else []
        return list(dict.fromkeys(names + extra))

    # -- actions ---------------------------------------------------------------------------

    def action_pull(self) -> None:
        info = self._target()
        if info is None or self._refused_while_busy():
            return
        model = self.listing.model(info.model)
        destination = model.entry.default_destination_dir if model and model.entry else DEFAULT_DESTINATION
        ref = f"{info.model}/{info.stage}/{info.version}"

        def chosen(text: str | None) -> None:
            if text:
                path = Path(text).expanduser()
                path = path if path.is_absolute() else self.settings.workdir / path
                shown = display_path(path, self.settings.workdir)
                self._run(jobs.pull(info.model, info.stage, info.version, path, shown))

        self.app.push_screen(PullDialog(ref, destination, self.settings.workdir), chosen)

    def action_promote(self) -> None:
        info = self._target(prefer_stage="dev")
        if info is None or self._refused_while_busy():
            return
        if info.stage != "dev":
            self.notify("Promote copies a dev version to release: select a dev version", severity="warning")
            return
        m = info.manifest

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(jobs.promote(info.model, info.version))

        self.app.push_screen(ConfirmScreen(
            f"Promote {info.model}/dev/{info.version} to release?\nThe same bundle (sha256 "
            f"{m.bundle_sha256[:12]}) becomes the next release version, and release's LATEST moves to it.",
            yes="Promote"), answered)

    def action_publish_file(self) -> None:
        if self._refused_while_busy():
            return
        ref = self.tree.cursor_ref if self.built else None
        last = self._last_publish
        if ref is not None and ref.model and not last.model:
            last = PublishRequest(last.path, ref.model, ref.stage or last.stage)

        def chosen(request: PublishRequest | None) -> None:
            if request is not None:
                self._last_publish = request
                self._run(jobs.publish_file(request, self.settings.workdir, self._model_block(request.model)))

        self.app.push_screen(PublishDialog(self.settings.workdir, self._model_names(), last), chosen)

    def action_publish_best(self) -> None:
        if self._refused_while_busy():
            return
        found = [task for task in (self.catalog.enabled_tasks() if self.catalog else []) if task.mlflow.model_name]
        if not found:
            self.notify("No enabled catalog task names a registry model (mlflow.modelName)" if self.catalog
                        else "The catalog could not be read: see the Launcher tab", severity="warning")
            return
        tasks = [(task.task_type, task.title or task.task_type,
                  (f"ranks runs by {task.mlflow.metric or '?'} ({task.mlflow.mode or '?'}), "
                   f"publishes to {task.mlflow.model_name}"
                   + (f"; model: {task.model['architecture']}" if (task.model or {}).get("architecture") else "")))
                 for task in found]
        ref = self.tree.cursor_ref if self.built else None
        # the task that publishes to the model under the cursor, else the first
        last = self._last_best or BestRequest(next(
            (task.task_type for task in found if ref and task.mlflow.model_name == ref.model), found[0].task_type))

        def chosen(request: BestRequest | None) -> None:
            if request is not None:
                self._last_best = request
                self._run(jobs.publish_best(self.settings, request))

        self.app.push_screen(PublishBestDialog(tasks, last, self.settings.workdir), chosen)

    def action_convert(self) -> None:
        info = self._target()
        if info is None or self._refused_while_busy():
            return
        m = info.manifest
        ref = f"{info.model}/{info.stage}/{info.version}"
        if m.has_program:
            self.notify(f"{ref} already holds {m.standard_name}", markup=False)
            return
        if m.checkpoint_name is None:
            self.notify(f"{ref} holds no checkpoint to convert", markup=False)
            return

        def chosen(request) -> None:
            if request is not None:
                self._run(jobs.convert(info, request, self._model_block(m.model)))

        self.app.push_screen(ConvertDialog(ref, m.task_type, m.num_classes, manifest=m, base=self.settings.workdir),
                             chosen)

    def _model_block(self, model: str):
        """The catalog's model: block for a registry model (Catalog.model_block_for), or None."""
        return self.catalog.model_block_for(model) if self.catalog else None

    def action_cancel_transfer(self) -> None:
        if self.busy and self.transfer.cancel():
            self._status(f"Cancelling {self.transfer.job.title}…")

    # -- transfers (the transfer bar runs them) --------------------------------------------

    def _run(self, job: jobs.Job) -> None:
        self.transfer.run(job, self._registry)
        self.add_class("-transfer")
        self._status("")
        self.refresh_bindings()

    def on_transfer_bar_ended(self, message: TransferBar.Ended) -> None:
        self.remove_class("-transfer")
        self.refresh_bindings()
        kind = {"done": "done", "failed": "error", "cancelled": "cancelled"}[message.state]
        self._status(message.text, kind)
        if not self.display:  # the user is on another tab: say it there
            self.notify(message.text, severity="error" if kind == "error" else "information", markup=False)
        if message.outcome is not None and message.outcome.changed:
            self._start_load(message.outcome.select, announce=False)
