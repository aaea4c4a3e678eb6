"""The lower half of the predict card: what is happening (with the registry download's progress
bar), where the answer came from, which program ran with which spec, what was skipped, and the
answer itself: a table of classes and probabilities, or of class shares beside a coloured
preview of the mask; for a batch (a folder of images, an N,C,H,W array) one row per sample."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, Static

from vtm_tui.core.formatting import format_megabytes
from vtm_tui.ui.status_styles import SERVED_BY
from vtm_tui.ui.tabs.serving.mask_preview import MaskPreview, class_colour
from vtm_tui.ui.widgets.text_line import TextLine

BAR_WIDTH = 20


def share_bar(fraction: float, style: str = "") -> Text:
    filled = max(0, min(BAR_WIDTH, round(fraction * BAR_WIDTH)))
    return Text.assemble(("█" * filled, style or "cyan"), ("░" * (BAR_WIDTH - filled), "dim"))


def notes_text(result: dict, mask_shown: str | None = None) -> Text:
    """`served by native · http://...`, one `skipped ...` line per path not taken, and for a
    local prediction the program that ran with its spec (`program model-standard.pt2
    (vtm-standard-v2): classification 3x32x32 float32 RGB -> logits (5 classes)`)."""
    served = result.get("served_by", "?")
    text = Text.assemble(("served by ", "bold"), (served, SERVED_BY.style(served)))
    if result.get("source"):
        text.append(f" · {result['source']}")
    for note in result.get("skipped") or []:
        text.append("\nskipped ", "bold")
        text.append(note, "yellow")
    program = result.get("program")
    if program:  # its device is in the source line already
        text.append("\nprogram ", "bold")
        text.append(f"{program.get('file')} ({program.get('format')})")
        if program.get("spec_line"):
            text.append(f": {program['spec_line']}")
    if mask_shown:
        text.append("\nmask ", "bold")
        text.append(mask_shown)
    return text


class PredictResult(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(id="predict-status-row"):
            yield TextLine(Text("Choose a target and an input, then ctrl+g to predict.", "dim"),
                           id="predict-status")
            yield ProgressBar(total=None, show_eta=False, id="predict-bar")
        yield Static(id="predict-notes")
        with Horizontal(id="predict-output"):
            # No cursor: its highlight would hide the class colours of the first row.
            table = DataTable(id="predict-table", cursor_type="none", zebra_stripes=True)
            yield table
            yield MaskPreview(id="predict-preview")

    def on_mount(self) -> None:
        self.query_one("#predict-bar").display = False
        self.query_one(MaskPreview).display = False
        self.query_one("#predict-table", DataTable).display = False

    @property
    def table(self) -> DataTable:
        return self.query_one("#predict-table", DataTable)

    def status(self, text: Text | str) -> None:
        self.query_one("#predict-status", TextLine).update(text)

    def busy(self, text: str) -> None:
        """A new prediction: the last answer goes, so a failure can never pass for it."""
        self.status(Text(text))
        self.query_one("#predict-notes", Static).update("")
        self.table.clear(columns=True)
        self.table.display = False
        self.query_one(MaskPreview).display = False
        bar = self.query_one("#predict-bar", ProgressBar)
        bar.display = False
        bar.update(total=None, progress=0)

    def progress(self, done: int, total: int) -> None:
        bar = self.query_one("#predict-bar", ProgressBar)
        bar.display = True
        bar.update(total=max(total, 1), progress=min(done, total))
        self.status(f"Downloading the registry bundle: {format_megabytes(done)} of {format_megabytes(total)}")

    def failed(self, text: str) -> None:
        self.status(Text.assemble(("Prediction failed: ", "bold red"), (text, "red")))

    def cancelled(self) -> None:
        self.status(Text("Prediction cancelled.", "yellow"))

    def show(self, result: dict, elapsed: float, mask_shown: str | None = None) -> None:
        task = result.get("task_type", "")
        self.status(Text.assemble(("Predicted", "bold green"), f" in {elapsed:.2f} s ({task})"))
        self.query_one("#predict-notes", Static).update(notes_text(result, mask_shown))
        table = self.table
        table.clear(columns=True)
        preview = self.query_one(MaskPreview)
        samples = result.get("samples") or []
        if len(samples) > 1:
            self.status(Text.assemble(("Predicted", "bold green"),
                                      f" {len(samples)} inputs in {elapsed:.2f} s ({task})"))
            self._show_batch(task, samples)
            preview.show(result.get("preview") if task == "segmentation" else None)
            preview.display = bool(preview.grid)
            table.display = True
            return
        if task == "segmentation":
            table.add_columns("", "Class", "Share", "")
            for row in result.get("shares", []):
                colour = class_colour(row["index"]).name
                table.add_row(Text("██", colour), row["class"], Text(f"{row['share']:.1%}", justify="right"),
                              share_bar(row["share"], colour))
            preview.show(result.get("preview"))
            preview.display = bool(preview.grid)
        else:
            table.add_columns("#", "Class", "Probability", "")
            for rank, row in enumerate(result.get("top", []), 1):
                table.add_row(Text(str(rank), justify="right"), row["class"],
                              Text(f"{row['probability']:.4f}", justify="right"), share_bar(row["probability"]))
            preview.show(None)
            preview.display = False
        table.display = True

    def _show_batch(self, task: str, samples: list[dict]) -> None:
        """One row per sample: its best class and probability, or its largest class (not the
        first, the background) and that class's share of the pixels; the preview is the first's."""
        table = self.table
        if task == "segmentation":
            table.add_columns("Input", "Main class", "Share", "")
            for sample in samples:
                shares = sample.get("shares") or []
                main = max(shares[1:] or shares, key=lambda row: row["share"], default=None)
                if main is None:
                    continue
                colour = class_colour(main["index"]).name
                table.add_row(sample["input"], Text(main["class"], colour),
                              Text(f"{main['share']:.1%}", justify="right"), share_bar(main["share"], colour))
        else:
            table.add_columns("Input", "Class", "Probability", "")
            for sample in samples:
                top = sample.get("top") or {}
                table.add_row(sample["input"], top.get("class", "?"),
                              Text(f"{top.get('probability', 0):.4f}", justify="right"),
                              share_bar(top.get("probability", 0)))

    @property
    def rows(self) -> list[list[str]]:
        """The result table as plain text."""
        table = self.table
        return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]
