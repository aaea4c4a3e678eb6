"""The Registry tab's side panel: what the tree's cursor stands for, as text.

A version shows its manifest (digest, size, source, metric, dates, torch, task, its standard
program with the spec and the recorded conversion difference, files); a stage
its versions; a model its stages and the catalog's defaults; the registry its models. Pure
functions of a Listing and the clock: the picture never depends on the machine.
"""
from __future__ import annotations

from datetime import datetime, timezone

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from vtm_tui.core.formatting import format_age, format_size
from vtm_tui.core.standard.spec import ModelSpec, SpecError
from vtm_tui.ui.tabs.registry.tree import Listing, ModelListing, NodeRef, format_metric

LABEL_WIDTH = 12


def format_created(created: str, now: float) -> str:
    try:
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return created or "-"
    return f"{when:%Y-%m-%d %H:%M} UTC · {format_age(now - when.timestamp())}"


def format_source(source: dict) -> str:
    kind = source.get("type")
    if kind == "file":
        return f"file {source.get('file_name') or source.get('path') or '?'}"
    if kind == "mlflow_run":
        name = f" ({source['run_name']})" if source.get("run_name") else ""
        where = f", experiment {source['experiment']}" if source.get("experiment") else ""
        return f"MLflow run {str(source.get('run_id', '?'))[:12]}{name}{where}"
    if kind in ("promotion", "conversion"):
        verb = "promoted" if kind == "promotion" else "converted"
        origin = source.get("origin")
        text = f"{verb} from {source.get('from_stage')}/{source.get('from_version')}"
        return text + (f" · {format_source(origin)}" if isinstance(origin, dict) and origin else "")
    return str(kind or "-")


def _names(names: list[str], shown: int = 12) -> str:
    """`a, b, c`; a long list (ImageNet's 1000) cut to its first names and the count."""
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f", ... ({len(names)} in all)"


def program_rows(m) -> list[tuple[str, str | Text]]:
    """The standard program of a version: which file, its spec (input, preprocessing, output,
    class names) and the conversion's recorded max abs difference against its source."""
    if not m.has_standard:
        return [("program", Text("none: s converts the checkpoint to model-standard.pt2", "dim"))]
    if not m.has_program:
        return [("program", Text(f"{m.standard_name} (Torch Standard v1): s adds a v2 program", "dim"))]
    rows: list[tuple[str, str | Text]] = [("program", f"{m.standard_name} (torch.export)")]
    if m.spec:
        try:
            spec = ModelSpec.from_json(m.spec)
            rows += [("spec", spec.describe()), ("class names", _names(spec.class_names))]
        except SpecError as exc:
            rows.append(("spec", Text(str(exc), "yellow")))
    conversion = m.conversion or {}
    diff, tolerance = conversion.get("max_abs_diff"), conversion.get("tolerance")
    if isinstance(diff, (int, float)):
        ok = isinstance(tolerance, (int, float)) and diff < tolerance
        rows.append(("conversion", Text.assemble(
            f"from {conversion.get('source', '?')}: max abs diff ",
            (f"{diff:.2g}", "green" if ok else "red"), f" (< {tolerance:g})" if tolerance else "")))
    for note in conversion.get("notes") or []:
        rows.append(("", Text(note, "dim")))
    return rows


def _facts(rows: list[tuple[str, str | Text]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(width=LABEL_WIDTH, style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    return table


def _title(*parts: tuple[str, str]) -> Text:
    return Text.assemble(*parts, end="")


def version_view(listing: Listing, ref: NodeRef, now: float) -> Table | Text:
    model, info = listing.model(ref.model), listing.info(ref)
    if model is None or info is None:
        return Text("This version is gone: press r to refresh.", "dim")
    m = info.manifest
    head = _title((f"{m.model} / {m.stage} / v{m.version}", "bold"),
                  ("  LATEST" if info.latest else "", "bold green"))
    rows: list[tuple[str, str | Text]] = []
    if model.title:
        rows.append(("catalog", model.title))
    rows += [
        ("sha256", m.bundle_sha256),
        ("size", f"{format_size(m.bundle_size)} bundle"),
        ("source", format_source(m.source)),
        ("metric", format_metric(m.metric) or "-"),
        ("created", format_created(m.created, now)),
        ("torch", m.torch_version or "-"),
        ("task type", m.task_type or "-"),
        ("classes", "-" if m.num_classes is None else str(m.num_classes)),
    ]
    if m.architecture:
        rows.append(("architecture", m.architecture))
    rows += program_rows(m)
    files = Table.grid(padding=(0, 2))
    files.add_column(no_wrap=True, min_width=max((len(f.name) for f in m.files), default=0))
    files.add_column(justify="right", no_wrap=True, min_width=8)
    files.add_column(style="dim", no_wrap=True, overflow="ellipsis")  # the digest gives way first
    for entry in m.files:
        files.add_row(entry.name, format_size(entry.size), entry.sha256[:12])
    rows.append(("files", files))
    grid = Table.grid()
    grid.add_row(head)
    grid.add_row("")
    grid.add_row(_facts(rows))
    return grid


def stage_view(listing: Listing, ref: NodeRef, now: float) -> Table | Text:
    model = listing.model(ref.model)
    infos = model.stages.get(ref.stage, []) if model else []
    grid = Table.grid()
    grid.add_row(_title((f"{ref.model} / {ref.stage}", "bold"),
                        (f"  {len(infos)} version{'s' if len(infos) != 1 else ''}", "dim")))
    grid.add_row("")
    if not infos:
        grid.add_row(Text("No committed versions yet.", "dim"))
        return grid
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    for column in ("version", "created", "size", "metric", "source"):
        table.add_column(column, no_wrap=column != "source", overflow="ellipsis")
    for info in reversed(infos):
        m = info.manifest
        version = Text(f"v{info.version}")
        if info.latest:
            version.append(" *", "bold green")
        table.add_row(version, m.created.replace("T", " ").rstrip("Z")[:16], format_size(m.bundle_size),
                      format_metric(m.metric) or "-", format_source(m.source))
    grid.add_row(table)
    grid.add_row(Text("* LATEST", "dim"))
    return grid


def model_view(listing: Listing, model: ModelListing) -> Table:
    rows: list[tuple[str, str | Text]] = []
    for stage, infos in model.stages.items():
        latest = model.latest(stage)
        rows.append((stage, f"{len(infos)} version{'s' if len(infos) != 1 else ''}"
                     + (f", LATEST v{latest.version}" if latest else "")))
    entry = model.entry
    if entry is not None:
        rows += [("catalog", f"{entry.title} (id {entry.id})"), ("task type", entry.task_type or "-"),
                 ("pulls", f"{entry.default_stage}/{entry.default_version} into {entry.default_destination_dir}")]
    else:
        rows.append(("catalog", Text("not in the catalog's registryModels", "dim")))
    grid = Table.grid()
    grid.add_row(_title((model.name, "bold"), (f"  {model.title}" if model.title else "", "italic")))
    grid.add_row("")
    grid.add_row(_facts(rows))
    return grid


def registry_view(listing: Listing) -> Table | Text:
    if not listing.models:
        return Text.assemble(
            ("No models in ", ""), (listing.url, "bold"), (" yet.\n\n", ""),
            "Publish a checkpoint with u (a local file) or b (the best MLflow run), or from a shell:\n",
            ("  vtm registry publish FILE --model NAME", "cyan"))
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="dim")
    for column in ("model", "catalog title", "versions"):
        table.add_column(column, overflow="fold")
    for model in listing.models:
        stages = ", ".join(f"{stage} {len(infos)}" for stage, infos in model.stages.items())
        table.add_row(Text(model.name, "bold"), model.title or "-", stages or "none")
    grid = Table.grid()
    grid.add_row(Text(listing.url, "bold"))
    grid.add_row("")
    grid.add_row(table)
    return grid


class RegistryDetail(VerticalScroll, can_focus=False):
    """Scrolls when a manifest is longer than the panel (many files, 80x24)."""

    def compose(self):
        yield Static(id="registry-facts")

    def show(self, renderable) -> None:
        self.query_one("#registry-facts", Static).update(renderable)
        self.scroll_home(animate=False)

    def show_ref(self, listing: Listing | None, ref: NodeRef | None, now: float) -> None:
        if listing is None or ref is None:
            self.show("")
        elif ref.version is not None:
            self.show(version_view(listing, ref, now))
        elif ref.stage is not None:
            self.show(stage_view(listing, ref, now))
        elif ref.model is not None:
            model = listing.model(ref.model)
            self.show(model_view(listing, model) if model else "")
        else:
            self.show(registry_view(listing))
