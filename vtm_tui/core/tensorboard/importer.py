"""TensorBoard event logs -> MLflow: every directory holding event files becomes one run (nested
under a parent run when there are several), every scalar point one metric point, exactly once.

The import state lives in MLflow itself, as run tags, so any machine can resume an import
against any tracking server:

- `vtm.tb_import.source_id` (a hash of the event directory's absolute path) finds the run of a
  directory again; `vtm.tb_import.parent_id` finds the parent run of a log root.
- `vtm.tb_import.file.<fid>`, one per event file (fid hashes the file name and its first
  record, so a replaced file is a new file), holds a position: the byte offset of a record and
  the index of a point in it, before which every point is in MLflow. It only moves forward and
  is written after the batches below it are committed.
- `vtm.tb_import.slot.<n>` travels in the same log_batch request as the points it describes
  (`<fid>:<offset>.<index>-<offset>.<index>`), so a batch and the record of its commit land
  together. A slot is reused only once its file's position has moved past its range.

On resume, points before a file's position or inside a slot's range are skipped, so nothing is
sent twice even when the importer was killed with batches in flight; a file that grew is read
from its position on. A truncated final record (a file still being written) is reported and the
position stays before it.

Event files are TFRecord files (tfrecord.py: length, masked CRC32C, data, masked CRC32C) of
TensorBoard `Event` protos (events.py). Modules: report (the result), state (tags, positions),
mlflow_calls (senders, lookups), batching (batches in flight, commits), this one (reading).

Test hooks (Settings): VTM_TB_IMPORT_BATCH_DELAY=<seconds> sleeps after each committed batch;
VTM_TB_IMPORT_EXIT_AFTER=<n> ends the process (exit 75) right after the n-th committed batch.
"""
from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from pathlib import Path
from typing import Callable

from vtm_tui.core.tensorboard.batching import MAX_BATCH_METRICS, Batching
from vtm_tui.core.tensorboard.mlflow_calls import (
    check_reachable,
    existing_run,
    experiment_id,
    find_run,
    first_wall_ms,
    open_run,
    retry,
    sender_for,
)
from vtm_tui.core.tensorboard.report import Change, ImportReport, RunResult
from vtm_tui.core.tensorboard.state import (
    FILE_TAG,
    TAG_FLATTEN,
    TAG_PARENT_ID,
    TAG_PARENT_OF,
    Batch,
    EventFile,
    ImportRun,
    Position,
    digest,
)
from vtm_tui.core.tensorboard.survey import Survey, all_imported, file_size, find_event_dirs, survey
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

MAX_BATCH_PARAMS = 100
INF = float("inf")
INFINITY_NOTE = ("were infinite: MLflow's SQL stores keep them as the largest float, "
                 "±1.7976931348623157e+308")
class _Importer(Batching):
    """Reads the event files of one run after the other and hands their points to Batching."""

    def __init__(self, client, sender, workers: int, report: ImportReport, flatten: bool,
                 on_progress, cancel: threading.Event | None):
        super().__init__(client, sender, workers, report, on_progress, cancel)
        self.flatten = flatten

    def key_of(self, tag: str) -> str:
        key = self.keys.get(tag)
        if key is None:  # a tag the survey did not see: a file that grew while it was read
            from vtm_tui.core.tensorboard.keys import add_key

            key = add_key(self.keys, tag, self.run_flatten)
            self.record_keys(self.run)
        from vtm_tui.core.tensorboard.keys import FLATTENED, change_of

        what = change_of(tag, key, self.run_flatten)
        if what:
            self.changed.add(key)
            if what != FLATTENED:
                self.report.renamed[tag] = key
        return key

    def record_keys(self, run: ImportRun) -> None:
        """Record the keys of changed tags in the run (keys.py) before their points go out."""
        from vtm_tui.core.tensorboard.keys import keys_tags, recorded_keys

        changed = {tag: key for tag, key in self.keys.items() if key != tag}
        if changed.items() <= recorded_keys(run.tags).items():
            return
        tags = keys_tags({**recorded_keys(run.tags), **changed})
        retry(self.sender.send, run.id, tags=list(tags.items()))
        run.tags.update(tags)

    # -- one run
    def import_run(self, run: ImportRun, rel: str, paths: list[Path], found: Survey | None) -> None:
        from vtm_tui.core.tensorboard.keys import assign_keys, recorded_keys

        self.run = run
        self.run_flatten = self.flatten
        recorded = run.tags.get(TAG_FLATTEN)
        if recorded in ("true", "false") and (recorded == "true") != self.flatten:
            # one run, one key scheme: new points follow the keys of the points already there
            self.run_flatten = recorded == "true"
            self.report.notes.append(
                f"run '{run.result.name}' was imported {'with' if self.run_flatten else 'without'} "
                f"--flatten-tags; its new points follow that")
        self.keys = assign_keys(found.tags if found else (), self.run_flatten, recorded_keys(run.tags))
        self.changed: set[str] = set()
        self.counts: dict[str, int] = {}
        self.infinite: dict[str, int] = {}
        self.record_keys(run)
        self.begin_run(run)
        from vtm_tui.core.tensorboard.events import EventDecoder

        decoder = EventDecoder(self.key_of)
        try:
            for path in paths:
                if self.cancelled():
                    break
                self.import_file(run, decoder, path)
        finally:
            self.drain()
            self.commit()
        self.count_changes(run, decoder)
        self.progress(force=True)

    def count_changes(self, run: ImportRun, decoder) -> None:
        """The report's changes for what this import read of the run: changed keys, infinities,
        values that are no scalars."""
        from vtm_tui.core.tensorboard.events import mlflow_key
        from vtm_tui.core.tensorboard.keys import DISTINCT, change_of

        name = run.result.name
        tag_of = {key: tag for tag, key in self.keys.items()}
        for tag, key in sorted(self.keys.items()):
            what = change_of(tag, key, self.run_flatten)
            if what and self.counts.get(key):
                instead = mlflow_key(tag, self.run_flatten) if what == DISTINCT else ""
                self.report.changes.append(Change(name, tag, what, key, self.counts[key], instead))
        for key, count in sorted(self.infinite.items()):
            self.report.changes.append(Change(name, tag_of.get(key, key), "infinity", INFINITY_NOTE, count))
        for (tag, plugin), count in sorted(decoder.left_out.items()):
            self.report.changes.append(Change(name, tag, "not a scalar", plugin, count))

    def import_file(self, run: ImportRun, decoder, path: Path) -> None:
        from vtm_tui.core.tensorboard.tfrecord import first_record, read_records

        try:
            head = first_record(path)
            size = path.stat().st_size
        except OSError as exc:
            self.problem(path, None, f"cannot read: {exc.strerror or exc}")
            return
        if head is None:
            if size:
                self.problem(path, 0, "first record incomplete (file still being written?); "
                                      "it will be imported by a later import")
            return
        run.result.files += 1
        fid = digest(path.name, head)[:16]
        base: Position = (0, 0)
        state = run.tags.get(FILE_TAG + fid)
        if state:
            try:
                data = json.loads(state)
                base = (int(data["offset"]), int(data["index"]))
            except (ValueError, KeyError, TypeError):
                self.problem(path, None, f"unreadable import state {state!r}; reading from the start")
        if base[0] > size:
            self.problem(path, size, f"file is shorter ({size} bytes) than the part already "
                                     f"imported ({base[0]} bytes); left alone")
            return
        file = EventFile(path, path.name, fid, base)
        self.files.append(file)
        skip = sorted(r for r in self.old_ranges.get(fid, []) if r[1] > base)
        self.bytes_total -= base[0]
        if base[0] == size:
            return
        skip_until = max((r[1] for r in skip), default=(0, 0))
        base_offset, base_index = base
        batch: list = []
        batch_start = base
        reader = base
        count = 0
        check = self.cancel is not None
        max_batch = MAX_BATCH_METRICS
        changed, counts = self.changed, self.counts
        try:
            for start, end, data, damage in read_records(path, base_offset):
                count += 1
                if count & 1023 == 0:
                    self.progress()
                    if (check and self.cancelled()) or self.stopped:
                        break
                if damage is not None:
                    self.problem(path, damage.offset, damage.message)
                    if damage.truncated:
                        break
                    self.bytes_read += end - start
                    reader = (end, 0)
                    continue
                self.bytes_read += end - start
                try:
                    decoded = decoder.decode(data)
                except Exception as exc:  # an intact record that is no Event
                    self.problem(path, start, f"undecodable event: {exc}")
                    reader = (end, 0)
                    continue
                if decoded is not None:
                    wall_time, step, values, params = decoded
                    if params:
                        self.log_params(run, path, start, params)
                    if values:
                        self.points_parsed += len(values)
                        # MLflow takes no negative (or NaN) timestamps: such a corrupt wall time becomes 0
                        timestamp = int(wall_time * 1000) if 0 <= wall_time < 1e15 else 0
                        if timestamp > run.max_wall_ms:
                            run.max_wall_ms = timestamp
                        index = -1
                        for key, value in values:
                            index += 1
                            if (start == base_offset and index < base_index) or (
                                    skip and (start, index) < skip_until
                                    and any(a <= (start, index) < b for a, b in skip)):
                                self.report.points_skipped += 1
                                run.result.skipped += 1
                                self.points_done += 1
                                continue
                            if key in changed:
                                counts[key] = counts.get(key, 0) + 1
                            if value == INF or value == -INF:
                                self.infinite[key] = self.infinite.get(key, 0) + 1
                            batch.append((key, value, timestamp, step))
                            if len(batch) >= max_batch:
                                self.dispatch(file, batch, batch_start, (start, index + 1))
                                batch_start = (start, index + 1)
                                batch = []
                reader = (end, 0)
        except OSError as exc:
            self.problem(path, reader[0], f"read failed: {exc.strerror or exc}")
        if self.stopped:
            return  # cancelled or failed: the open batch is not sent, the position stays before it
        if batch:
            self.dispatch(file, batch, batch_start, reader)
        elif reader > batch_start:
            marker = Batch(file, None, batch_start, reader, None)
            marker.done = True
            file.pending.append(marker)
            file.advance()

    def log_params(self, run: ImportRun, path: Path, offset: int, params: dict[str, str]) -> None:
        from vtm_tui.core.tensorboard.events import MAX_PARAM_VALUE_LENGTH, mlflow_key

        new = []
        for name, value in params.items():
            key = mlflow_key(name)
            if len(value) > MAX_PARAM_VALUE_LENGTH:
                self.report.changes.append(Change(run.result.name, name, "param cut", (
                    f"cut to the {MAX_PARAM_VALUE_LENGTH} characters MLflow keeps (it had {len(value)})"), 1))
                value = value[:MAX_PARAM_VALUE_LENGTH]
            if key != name:
                self.report.renamed[name] = key
                self.report.changes.append(Change(run.result.name, name, "renamed", key, 1))
            if key in run.params:
                if run.params[key] != value:
                    self.problem(path, offset, f"hparam {name!r} is {value!r} here but MLflow already "
                                               f"has {run.params[key]!r}; kept MLflow's value")
                continue
            new.append((key, value))
            run.params[key] = value
        for i in range(0, len(new), MAX_BATCH_PARAMS):
            retry(self.sender.send, run.id, params=new[i:i + MAX_BATCH_PARAMS])
        run.result.params += len(new)
        self.report.params_logged += len(new)

    def finish_run(self, run: ImportRun) -> None:
        if self.stopped:
            if run.status != "FINISHED":
                self._terminate(run.id, "KILLED", None)
            return
        end = max(run.end_time or 0, run.max_wall_ms) or None
        if run.status != "FINISHED" or (end and end != run.end_time):
            self._terminate(run.id, "FINISHED", end)

    def _terminate(self, run_id: str, status: str, end_ms: int | None) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints "View run" links there
            retry(self.client.set_terminated, run_id, status, end_time=end_ms)


def _plan(client, report: ImportReport, root: Path, dirs: dict[str, list[Path]]) -> list[tuple]:
    """(rel, paths, the run an earlier import made or None, Survey or None) per folder to import:
    folders without a run and with nothing to import (no scalars, no hparams) are reported in
    the changes and left out; a folder whose files were all imported already is not surveyed."""
    plans = []
    for rel, paths in dirs.items():
        existing = existing_run(client, report.experiment_id, rel, (root / rel).resolve())
        found = None if existing is not None and all_imported(existing.tags, paths) else survey(paths)
        if existing is None and not found.importable:
            report.changes.append(Change(rel, rel, "no scalars", found.describe_left_out(),
                                         sum(found.left_out.values())))
            continue
        plans.append((rel, paths, existing, found))
    return plans


def import_tensorboard(log_dir, tracking_uri: str | None = None,
                       experiment_name: str = "void-train-manager", run_name: str | None = None,
                       flatten_tags: bool = False,
                       on_progress: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None, *, settings=None,
                       workers: int | None = None) -> ImportReport:
    """Import every scalar point and hparam under `log_dir` into MLflow, exactly once.

    `tracking_uri` None: vtm's tracking server from `settings` (started when needed).
    `on_progress(points_done, total_estimate)` is called from this thread a few times a second.
    Setting `cancel` stops after the batches in flight; a later import resumes. Raises
    UserError for bad input; everything else that goes wrong is in the report's problems."""
    started = time.monotonic()
    root = Path(log_dir).expanduser()
    if not root.exists():
        raise UserError(f"{log_dir}: no such directory")
    if not root.is_dir():
        raise UserError(f"{log_dir}: not a directory")
    root = root.resolve()
    if not experiment_name:
        raise UserError("the experiment name must not be empty")
    dirs = find_event_dirs(root)
    if not dirs:
        raise UserError(f"{root}: no TensorBoard event files (*tfevents*) in it or below")
    if tracking_uri is None:
        from vtm_tui.core.tracking.uri import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(settings or Settings.load())
    check_reachable(tracking_uri)

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    report = ImportReport(str(root), tracking_uri, experiment_name)
    client = MlflowClient(tracking_uri)
    sender, default_workers = sender_for(client, tracking_uri)
    importer = _Importer(client, sender, max(1, workers or default_workers), report, flatten_tags,
                         on_progress, cancel)
    importer.bytes_total = sum(file_size(p) for paths in dirs.values() for p in paths)
    try:
        report.experiment_id = experiment_id(client, experiment_name)
        plans = _plan(client, report, root, dirs)
        several = len(plans) > 1
        firsts = {rel: first_wall_ms(paths[0]) for rel, paths in dirs.items()}
        parent = None
        if several:
            parent_id = digest(root)[:24]
            found = find_run(client, report.experiment_id, TAG_PARENT_ID, parent_id)
            if found is None:
                starts = [ms for ms in firsts.values() if ms]
                created = client.create_run(
                    report.experiment_id, start_time=min(starts) if starts else None,
                    run_name=run_name or root.name,
                    tags={TAG_PARENT_OF: str(root), TAG_PARENT_ID: parent_id,
                          "mlflow.source.name": "vtm import-tb", "mlflow.source.type": "LOCAL"})
                parent = ImportRun(RunResult(run_name or root.name, created.info.run_id, str(root), True),
                                   {}, {}, created.info.status, None)
            else:
                parent = ImportRun(RunResult(found.info.run_name, found.info.run_id, str(root), False),
                                   {}, {}, found.info.status, found.info.end_time)
            report.parent_run_id = parent.id
        for rel, paths, existing, found in plans:
            if importer.cancelled():
                break
            default_name = rel if rel != "." else root.name
            name = default_name if several else (run_name or default_name)
            run = open_run(client, report.experiment_id, name, (root / rel).resolve(), rel,
                           parent.id if parent else None, firsts[rel], flatten_tags, existing)
            report.runs.append(run.result)
            importer.import_run(run, rel, paths, found)
            importer.finish_run(run)
            if parent is not None:
                parent.max_wall_ms = max(parent.max_wall_ms, run.max_wall_ms)
        if parent is not None:
            importer.finish_run(parent)
    except MlflowException as exc:
        importer.problem(report.tracking_uri, None, f"MLflow: {exc.message}")
    except OSError as exc:  # the server went away mid-import (requests' errors are OSErrors)
        importer.problem(report.tracking_uri, None, f"MLflow: {exc}")
    finally:
        importer.pool.shutdown(wait=True)
    report.elapsed = time.monotonic() - started
    return report
