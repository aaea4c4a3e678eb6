"""What a TensorBoard import did: the report (runs, points sent and skipped, params, problems,
what it changed or left out per tag), as dataclasses, JSON and the summary lines every face
prints."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Problem:
    """Something the import could not take: the file (or tracking URI), the byte offset of the
    record (None: the whole file), what went wrong."""
    file: str
    offset: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}: offset {self.offset}: {self.message}" if self.offset is not None \
            else f"{self.file}: {self.message}"


@dataclass
class Change:
    """Something the import changed or left out, counted: in run `run` (its name; for a folder
    left out, the folder), of `subject` (a TensorBoard tag, an hparam name or the folder),
    `what` happened (see WHAT), what it `became` (a key, a plugin, a note), and how many points
    (or values) it concerns; `instead_of`, for a tag made distinct, the key another tag has.
    Counted for what this import read: points an earlier import took are not counted again."""
    run: str
    subject: str
    what: str
    became: str
    points: int = 0
    instead_of: str = ""  # made distinct: the key that another tag has

    WHAT = ("flattened", "renamed", "made distinct", "infinity", "not a scalar", "param cut", "no scalars")

    def __str__(self) -> str:
        count = f"{self.points:,} point{'s' if self.points != 1 else ''}"
        if self.what == "no scalars":
            return f"folder '{self.subject}': no scalars ({self.became}): no MLflow run made for it"
        where = f"run '{self.run}': "
        if self.what in ("flattened", "renamed"):
            return f"{where}tag '{self.subject}' {self.what} to '{self.became}' ({count})"
        if self.what == "made distinct":
            return (f"{where}tag '{self.subject}' made distinct as '{self.became}' ({count}): "
                    f"'{self.instead_of}' is another tag's key")
        if self.what == "infinity":
            return f"{where}tag '{self.subject}': {count} {self.became}"
        if self.what == "not a scalar":
            return f"{where}tag '{self.subject}' left out: {count} of {self.became}, not scalars"
        return f"{where}param '{self.subject}' {self.became}"


@dataclass
class RunResult:
    """One MLflow run of an import: its name, id, the event directory, whether it was created,
    and counts: event files, points sent, points already there (skipped), params logged."""
    name: str
    run_id: str
    source: str
    created: bool
    files: int = 0
    points: int = 0     # sent by this import
    skipped: int = 0    # found already in MLflow (resume)
    params: int = 0


@dataclass
class ImportReport:
    """What an import did: where from and to, the runs, counts of points sent and skipped and
    params logged, problems, renamed tags (TensorBoard tag -> MLflow key, characters MLflow
    refuses), every change per tag (changes: flattened, renamed, made distinct, infinities
    clamped, non-scalars left out, params cut, folders without scalars), notes, whether it was
    cancelled, seconds elapsed."""
    log_dir: str
    tracking_uri: str
    experiment_name: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    runs: list[RunResult] = field(default_factory=list)
    points_imported: int = 0
    points_skipped: int = 0
    params_logged: int = 0
    problems: list[Problem] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # TensorBoard tag -> MLflow key
    changes: list[Change] = field(default_factory=list)  # per tag: renamed, distinct, clamped, left out
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    elapsed: float = 0.0

    @property
    def runs_created(self) -> int:
        """How many runs the import created."""
        return sum(run.created for run in self.runs)

    @property
    def runs_reused(self) -> int:
        """How many runs an earlier import had created (resumed)."""
        return sum(not run.created for run in self.runs)

    @property
    def ok(self) -> bool:
        """True when nothing went wrong and it was not cancelled (exit code 0)."""
        return not self.problems and not self.cancelled

    def to_json(self) -> dict:
        """Every field plus runs_created, runs_reused and ok: the `--json` report."""
        data = asdict(self)
        data.update(runs_created=self.runs_created, runs_reused=self.runs_reused, ok=self.ok)
        return data


def format_report(report: ImportReport) -> list[str]:
    """Human-readable summary lines (CLI, script steps, the TUI card)."""
    rate = report.points_imported / report.elapsed if report.elapsed > 0 else 0.0
    lines = [f"{'cancelled after importing' if report.cancelled else 'imported'} "
             f"{report.points_imported:,} points and {report.params_logged} params into "
             f"{len(report.runs)} run(s) ({report.runs_created} created, {report.runs_reused} reused) "
             f"of experiment '{report.experiment_name}' at {report.tracking_uri} "
             f"in {report.elapsed:.1f}s ({rate:,.0f} points/s)"]
    if report.points_skipped:
        lines.append(f"  {report.points_skipped:,} points were already in MLflow and were skipped")
    if report.parent_run_id:
        lines.append(f"  parent run {report.parent_run_id}")
    for run in report.runs:
        lines.append(f"  run '{run.name}' ({run.run_id}): {run.points:,} points, {run.params} params"
                     + (" [new]" if run.created else ""))
    lines += [f"  {change}" for change in report.changes]
    lines += [f"  note: {note}" for note in report.notes]
    return lines

