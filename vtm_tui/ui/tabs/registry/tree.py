"""The Registry tab's tree: registry -> models -> stages -> versions, built from one listing.

A listing is read in a worker thread (`read_listing`), then shown at once; a rebuild keeps
what was expanded and where the cursor was, by the node's (model, stage, version) reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Catalog, RegistryModel
    from vtm_tui.core.registry import Registry, VersionInfo


@dataclass(frozen=True)
class NodeRef:
    """What a tree node stands for; model None is the registry itself."""
    model: str | None = None
    stage: str | None = None
    version: int | None = None

    @property
    def text(self) -> str:
        return "/".join(str(part) for part in (self.model, self.stage, self.version) if part is not None)


@dataclass
class ModelListing:
    name: str
    stages: dict[str, list[VersionInfo]]  # stage -> committed versions, ascending
    entry: RegistryModel | None = None  # the catalog's registryModels entry with this modelName

    @property
    def title(self) -> str | None:
        return self.entry.title if self.entry is not None else None

    def latest(self, stage: str) -> VersionInfo | None:
        return next((info for info in self.stages.get(stage, []) if info.latest), None)

    def version(self, stage: str, number: int) -> VersionInfo | None:
        return next((info for info in self.stages.get(stage, []) if info.version == number), None)


@dataclass
class Listing:
    """Everything the tab shows of one registry, read in one go."""
    url: str  # for display: relative folder or masked URL
    models: list[ModelListing] = field(default_factory=list)
    catalog: Catalog | None = None

    def model(self, name: str | None) -> ModelListing | None:
        return next((model for model in self.models if model.name == name), None)

    def info(self, ref: NodeRef) -> VersionInfo | None:
        model = self.model(ref.model)
        if model is None or ref.stage is None or ref.version is None:
            return None
        return model.version(ref.stage, ref.version)


def read_listing(registry: Registry, url: str, catalog: Catalog | None) -> Listing:
    """Every model, stage and committed version with its manifest. Blocking: a worker's job."""
    entries = {entry.model_name: entry for entry in (catalog.registry_models if catalog else [])}
    models = []
    for name in registry.list_models():
        stages = {stage: registry.list_versions(name, stage) for stage in registry.list_stages(name)}
        models.append(ModelListing(name, stages, entries.get(name)))
    return Listing(url, models, catalog)


def format_metric(metric: dict | None) -> str:
    if not isinstance(metric, dict) or "value" not in metric:
        return ""
    value = metric.get("value")
    shown = f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return f"{metric.get('name', 'metric')} {shown}"


def version_label(info: VersionInfo) -> Text:
    text = Text(f"v{info.version}")
    if info.latest:
        text.append("  LATEST", "bold green")
    metric = format_metric(info.manifest.metric)
    if metric:
        text.append(f"  {metric}", "dim")
    return text


def stage_label(model: ModelListing, stage: str) -> Text:
    infos = model.stages.get(stage, [])
    text = Text(stage, "bold" if stage == "release" else "")
    count = f"{len(infos)} version{'s' if len(infos) != 1 else ''}" if infos else "empty"
    text.append(f"  {count}", "dim")
    return text


def model_label(model: ModelListing) -> Text:
    text = Text(model.name, "bold")
    if model.title:
        text.append(f"  {model.title}", "italic dim")
    return text


class RegistryTree(Tree[NodeRef]):
    """The tree of one Listing. Versions newest first: LATEST is usually at the top."""

    def __init__(self, url: str, **kwargs) -> None:
        super().__init__(Text.assemble((url, "bold"), ("  reading…", "dim")), data=NodeRef(), **kwargs)
        self.show_root = True
        self.guide_depth = 3

    @property
    def cursor_ref(self) -> NodeRef | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def _expanded_refs(self) -> set[NodeRef]:
        found, stack = set(), [self.root]
        while stack:
            node = stack.pop()
            if node.is_expanded and node.data is not None:
                found.add(node.data)
            stack.extend(node.children)
        return found

    def show_listing(self, listing: Listing, select: NodeRef | None = None, *, first: bool = False) -> None:
        """Rebuild from `listing`; put the cursor on `select` (or the nearest node still there).
        first: the first listing, everything expanded and the cursor on the first version."""
        expanded = self._expanded_refs()
        self.clear()
        count = len(listing.models)
        self.root.set_label(Text.assemble((listing.url, "bold"),
                                          (f"  {count} model{'s' if count != 1 else ''}", "dim")))
        nodes: dict[NodeRef, TreeNode[NodeRef]] = {NodeRef(): self.root}
        for model in listing.models:
            ref = NodeRef(model.name)
            model_node = self.root.add(model_label(model), data=ref, expand=first or ref in expanded)
            nodes[ref] = model_node
            for stage in model.stages:
                ref = NodeRef(model.name, stage)
                stage_node = model_node.add(stage_label(model, stage), data=ref,
                                            expand=first or ref in expanded)
                nodes[ref] = stage_node
                for info in reversed(model.stages[stage]):
                    ref = NodeRef(model.name, stage, info.version)
                    nodes[ref] = stage_node.add_leaf(version_label(info), data=ref)
        self.root.expand()
        if first and (select is None or select.model is None):
            select = next((ref for ref in nodes if ref.version is not None), None)
        target = self._nearest(nodes, select)
        _ = self.last_line  # lays out the lines, so the node knows its line
        self.move_cursor(target)

    @staticmethod
    def _nearest(nodes: dict[NodeRef, TreeNode[NodeRef]], ref: NodeRef | None) -> TreeNode[NodeRef]:
        if ref is None:
            return nodes[NodeRef()]
        for candidate in (ref, NodeRef(ref.model, ref.stage), NodeRef(ref.model), NodeRef()):
            if candidate in nodes:
                node = nodes[candidate]
                parent = node.parent
                while parent is not None:  # a cursor inside a collapsed branch would be invisible
                    parent.expand()
                    parent = parent.parent
                return node
        return nodes[NodeRef()]

    def show_error(self, url: str) -> None:
        self.clear()
        self.root.set_label(Text.assemble((url, "bold"), ("  unreachable", "red")))
        _ = self.last_line
        self.move_cursor(self.root)
