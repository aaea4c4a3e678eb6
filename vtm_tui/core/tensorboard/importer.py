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

Test hooks: VTM_TB_IMPORT_BATCH_DELAY=<seconds> sleeps after each committed batch;
VTM_TB_IMPORT_EXIT_AFTER=<n> ends the process (exit 75) right after the n-th committed batch.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

TAG_SOURCE = "vtm.tb_import.source"
TAG_SOURCE_ID = "vtm.tb_import.source_id"
TAG_PARENT_OF = "vtm.tb_import.parent_of"
TAG_PARENT_ID = "vtm.tb_import.parent_id"
TAG_FLATTEN = "vtm.tb_import.flatten_tags"
FILE_TAG = "vtm.tb_import.file."
SLOT_TAG = "vtm.tb_import.slot."
MAX_BATCH_METRICS = 999        # + the slot tag = MLflow's 1000 entities per log_batch
MAX_BATCH_PARAMS = 100
DEFAULT_REST_WORKERS = 4
COMMIT_INTERVAL = 2.0          # seconds between writes of file positions while importing
PROGRESS_INTERVAL = 0.2
EVENT_FILE = re.compile(r"tfevents")
_FILE_TIME = re.compile(r"tfevents\.(\d+(?:\.\d+)?)")
_SLOT_VALUE = re.compile(r"^([0-9a-f]+):(\d+)\.(\d+)-(\d+)\.(\d+)$")

Position = tuple[int, int]  # (byte offset of a record, index of a point in it)


@dataclass
class Problem:
    file: str
    offset: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}: offset {self.offset}: {self.message}" if self.offset is not None \
            else f"{self.file}: {self.message}"


@dataclass
class RunResult:
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
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    elapsed: float = 0.0

    @property
    def runs_created(self) -> int:
        return sum(run.created for run in self.runs)

    @property
    def runs_reused(self) -> int:
        return sum(not run.created for run in self.runs)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.cancelled

    def to_json(self) -> dict:
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
    for tag, key in sorted(report.renamed.items()):
        lines.append(f"  tag {tag!r} imported as {key!r}")
    lines += [f"  note: {note}" for note in report.notes]
    return lines


# ---------------------------------------------------------------- discovery

def _file_order(name: str):
    match = _FILE_TIME.search(name)
    return (float(match.group(1)) if match else float("inf"), name)


def find_event_dirs(root: Path) -> dict[str, list[Path]]:
    """Relative directory path ('.' for root) -> its event files, in the order they were written
    (the timestamp in the file name, then the name)."""
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = [name for name in filenames if EVENT_FILE.search(name)
                 and os.path.isfile(os.path.join(dirpath, name))]
        if names:
            rel = os.path.relpath(dirpath, root)
            found[rel] = [Path(dirpath, name) for name in sorted(names, key=_file_order)]
    return dict(sorted(found.items()))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _digest(*parts) -> str:
    sha = hashlib.sha1()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else str(part).encode())
        sha.update(b"\0")
    return sha.hexdigest()


# ---------------------------------------------------------------- MLflow access

def _retry(call, *args, **kwargs):
    """One more try for idempotent calls that failed for a reason other than the server saying
    no (4xx). MLflow's HTTP layer already retries connection errors; this covers failures before
    a request is sent, such as MLflow's telemetry thread unsetting an environment variable while
    `requests` iterates os.environ (KeyError)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException) and 400 <= exc.get_http_status_code() < 500:
            raise
        if not isinstance(exc, (MlflowException, OSError, KeyError)):
            raise
        time.sleep(1.0)
        return call(*args, **kwargs)


def _check_reachable(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=5).close()
    except OSError as exc:
        raise UserError(f"cannot reach the MLflow tracking server at {uri}: {exc.strerror or exc}") from None


class _ClientSender:
    """log_batch through MlflowClient: any tracking URI MLflow understands."""

    def __init__(self, client):
        from mlflow.entities import Metric, Param, RunTag

        self._client, self._metric, self._param, self._tag = client, Metric, Param, RunTag

    def prepare(self, run_id: str, metrics=(), tags=(), params=()):
        return (run_id, [self._metric(k, v, t, s) for k, v, t, s in metrics],
                [self._param(k, v) for k, v in params], [self._tag(k, v) for k, v in tags])

    def post(self, prepared) -> None:
        run_id, metrics, params, tags = prepared
        self._client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

    def send(self, run_id: str, metrics=(), tags=(), params=()) -> None:
        self.post(self.prepare(run_id, metrics, tags, params))


class _RestSender(_ClientSender):
    """log_batch straight to a REST tracking server: the request MlflowClient sends, encoded
    with the json module instead of protobuf's JSON printer (several times cheaper per point)
    and sent with MLflow's own HTTP session, retries and credentials. Bodies are encoded on the
    importing thread, so worker threads only post bytes."""

    ENDPOINT = "/api/2.0/mlflow/runs/log-batch"
    HEADERS = {"Content-Type": "application/json"}

    def __init__(self, store):
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        self._creds, self._http, self._verify = store.get_host_creds, http_request, verify_rest_response

    def prepare(self, run_id: str, metrics=(), tags=(), params=()) -> bytes:
        from vtm_tui.core.tensorboard.events import json_number

        inf = float("inf")
        return json.dumps({
            "run_id": run_id,
            "metrics": [{"key": k, "value": v if -inf < v < inf else json_number(v),
                         "timestamp": t, "step": s} for k, v, t, s in metrics],
            "params": [{"key": k, "value": v} for k, v in params],
            "tags": [{"key": k, "value": v} for k, v in tags]}, separators=(",", ":")).encode()

    def post(self, body: bytes) -> None:
        response = self._http(self._creds(), self.ENDPOINT, "POST", data=body, extra_headers=self.HEADERS)
        self._verify(response, self.ENDPOINT)


def _sender_for(client, uri: str):
    if urlsplit(uri).scheme in ("http", "https"):
        try:
            from mlflow.tracking._tracking_service.utils import _get_store

            store = _get_store(uri)
            if callable(getattr(store, "get_host_creds", None)):
                return _RestSender(store), DEFAULT_REST_WORKERS
        except Exception:  # an MLflow without these internals: the public client still works
            pass
    return _ClientSender(client), 1  # direct stores (sqlite://, file:) write from one thread


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = _retry(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created meanwhile by someone else
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"experiment '{name}' is deleted; restore it in MLflow or choose another "
                        f"--experiment-name")
    return experiment.experiment_id


def _find_run(client, experiment_id: str, key: str, value: str):
    runs = _retry(client.search_runs, [experiment_id], filter_string=f"tags.`{key}` = '{value}'",
                  max_results=5, order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def _first_wall_ms(path: Path) -> int | None:
    from tensorboard.compat.proto import event_pb2

    from vtm_tui.core.tensorboard.tfrecord import HEADER_SIZE, first_record

    try:
        head = first_record(path)
        if head is None:
            return None
        return int(event_pb2.Event.FromString(head[HEADER_SIZE:-4]).wall_time * 1000) or None
    except Exception:
        return None


# ---------------------------------------------------------------- the import

class _Batch:
    __slots__ = ("file", "metrics", "start", "end", "slot", "done")  # metrics: their count once sent

    def __init__(self, file, metrics, start, end, slot):
        self.file, self.metrics, self.start, self.end, self.slot = file, metrics, start, end, slot
        self.done = False


class _File:
    def __init__(self, path: Path, rel: str, fid: str, base: Position):
        self.path, self.rel, self.fid = path, rel, fid
        self.written = base    # the position in MLflow
        self.committed = base  # every point before it is committed
        self.pending: deque[_Batch] = deque()  # dispatch order

    def advance(self) -> None:
        while self.pending and self.pending[0].done:
            self.committed = self.pending.popleft().end


class _Run:
    def __init__(self, result: RunResult, tags: dict, params: dict, status: str, end_time):
        self.result, self.tags, self.params = result, tags, params
        self.status, self.end_time = status, end_time
        self.max_wall_ms = 0

    @property
    def id(self) -> str:
        return self.result.run_id


class _Importer:
    def __init__(self, client, sender, workers: int, report: ImportReport, flatten: bool,
                 on_progress, cancel: threading.Event | None):
        self.client, self.sender, self.workers, self.report = client, sender, workers, report
        self.flatten, self.on_progress, self.cancel = flatten, on_progress, cancel
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="tb-import")
        self.inflight: dict[Future, _Batch] = {}
        self.stopped = False
        self.bytes_total = 0
        self.bytes_read = 0
        self.points_parsed = 0
        self.points_done = 0
        self._last_progress = 0.0
        self._last_commit = time.monotonic()
        hooks = Settings.from_environ()  # read now: a test sets them around one import
        self._delay, self._exit_after = hooks.tb_import_batch_delay, hooks.tb_import_exit_after
        self._sent = 0
        self._sent_lock = threading.Lock()

    # -- helpers
    def key_of(self, tag: str) -> str:
        from vtm_tui.core.tensorboard.events import mlflow_key

        flatten = self.run_flatten
        key = mlflow_key(tag, flatten)
        if key != tag and not (flatten and key == tag.replace("/", "_")):
            self.report.renamed[tag] = key
        return key

    def problem(self, file, offset, message: str) -> None:
        self.report.problems.append(Problem(str(file), offset, message))

    def progress(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        estimate = self.points_parsed
        if self.bytes_read and self.bytes_total > self.bytes_read:
            estimate = int(self.points_parsed * self.bytes_total / self.bytes_read)
        self.on_progress(self.points_done, max(estimate, self.points_done))

    def cancelled(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.report.cancelled = True
            self.stopped = True
        return self.stopped

    # -- sending
    def _post(self, payload) -> None:
        _retry(self.sender.post, payload)
        if self._delay:
            time.sleep(self._delay)
        if self._exit_after:
            with self._sent_lock:
                self._sent += 1
                if self._sent >= self._exit_after:
                    os._exit(75)

    def _collect(self, block: bool) -> None:
        if not self.inflight:
            return
        done, _ = wait(list(self.inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self.inflight.pop(future)
            error = future.exception()
            if error is not None:
                if not self.stopped or not self.report.problems:
                    self.problem(batch.file.path, batch.start[0],
                                 f"MLflow did not take a batch of {batch.metrics} points: {error}")
                self.stopped = True
                continue
            batch.done = True
            count = batch.metrics
            self.points_done += count
            self.run.result.points += count
            self.report.points_imported += count
            batch.file.advance()

    def _dispatch(self, file: _File, metrics: list, start: Position, end: Position) -> None:
        while len(self.inflight) >= self.workers:
            self._collect(block=True)
        if self.stopped:  # failed or cancelled: send nothing more; positions stay before this
            return
        if len(self.slots_used) >= 2 * self.workers + self.slots_reserved:
            self._collect(block=False)
            self.commit()
        slot = 0
        while slot in self.slots_used:
            slot += 1
        batch = _Batch(file, metrics, start, end, slot)
        self.slots_used[slot] = (file.fid, end)
        file.pending.append(batch)
        tag = (f"{SLOT_TAG}{slot}", f"{file.fid}:{start[0]}.{start[1]}-{end[0]}.{end[1]}")
        payload = self.sender.prepare(self.run.id, metrics, [tag])
        batch.metrics = len(metrics)  # the payload holds the points now
        self.inflight[self.pool.submit(self._post, payload)] = batch
        if time.monotonic() - self._last_commit > COMMIT_INTERVAL:
            self._collect(block=False)
            self.commit()

    def drain(self) -> None:
        while self.inflight:
            self._collect(block=True)
            self.progress()

    def commit(self) -> None:
        """Write the positions that moved, then free the slots they cover."""
        self._last_commit = time.monotonic()
        for file in self.files:
            file.advance()
            if file.committed > file.written:
                offset, index = file.committed
                _retry(self.client.set_tag, self.run.id, FILE_TAG + file.fid, json.dumps(
                    {"file": file.rel, "offset": offset, "index": index}, separators=(",", ":")))
                file.written = file.committed
        written = {file.fid: file.written for file in self.files}
        for slot, (fid, end) in list(self.slots_used.items()):
            if fid in written and written[fid] >= end:
                del self.slots_used[slot]
                if slot in self.old_slots:
                    self.old_slots.discard(slot)
                    self.slots_reserved -= 1

    # -- one run
    def import_run(self, run: _Run, rel: str, paths: list[Path]) -> None:
        self.run = run
        self.run_flatten = self.flatten
        recorded = run.tags.get(TAG_FLATTEN)
        if recorded in ("true", "false") and (recorded == "true") != self.flatten:
            # one run, one key scheme: new points follow the keys of the points already there
            self.run_flatten = recorded == "true"
            self.report.notes.append(
                f"run '{run.result.name}' was imported {'with' if self.run_flatten else 'without'} "
                f"--flatten-tags; its new points follow that")
        self.files: list[_File] = []
        self.slots_used: dict[int, tuple[str, Position]] = {}
        self.old_ranges: dict[str, list[tuple[Position, Position]]] = {}
        self.old_slots: set[int] = set()
        for key, value in run.tags.items():
            if key.startswith(SLOT_TAG) and key[len(SLOT_TAG):].isdigit():
                match = _SLOT_VALUE.match(value)
                if match:
                    fid, a, b, c, d = match.groups()
                    slot = int(key[len(SLOT_TAG):])
                    self.slots_used[slot] = (fid, (int(c), int(d)))
                    self.old_slots.add(slot)
                    self.old_ranges.setdefault(fid, []).append(((int(a), int(b)), (int(c), int(d))))
        self.slots_reserved = len(self.old_slots)
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
        self.progress(force=True)

    def import_file(self, run: _Run, decoder, path: Path) -> None:
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
        fid = _digest(path.name, head)[:16]
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
        file = _File(path, path.name, fid, base)
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
                            batch.append((key, value, timestamp, step))
                            if len(batch) >= max_batch:
                                self._dispatch(file, batch, batch_start, (start, index + 1))
                                batch_start = (start, index + 1)
                                batch = []
                reader = (end, 0)
        except OSError as exc:
            self.problem(path, reader[0], f"read failed: {exc.strerror or exc}")
        if self.stopped:
            return  # cancelled or failed: the open batch is not sent, the position stays before it
        if batch:
            self._dispatch(file, batch, batch_start, reader)
        elif reader > batch_start:
            marker = _Batch(file, None, batch_start, reader, None)
            marker.done = True
            file.pending.append(marker)
            file.advance()

    def log_params(self, run: _Run, path: Path, offset: int, params: dict[str, str]) -> None:
        from vtm_tui.core.tensorboard.events import MAX_PARAM_VALUE_LENGTH, mlflow_key

        new = []
        for name, value in params.items():
            key = mlflow_key(name)
            value = value[:MAX_PARAM_VALUE_LENGTH]
            if key != name:
                self.report.renamed[name] = key
            if key in run.params:
                if run.params[key] != value:
                    self.problem(path, offset, f"hparam {name!r} is {value!r} here but MLflow already "
                                               f"has {run.params[key]!r}; kept MLflow's value")
                continue
            new.append((key, value))
            run.params[key] = value
        for i in range(0, len(new), MAX_BATCH_PARAMS):
            _retry(self.sender.send, run.id, params=new[i:i + MAX_BATCH_PARAMS])
        run.result.params += len(new)
        self.report.params_logged += len(new)

    def finish_run(self, run: _Run) -> None:
        if self.stopped:
            if run.status != "FINISHED":
                self._terminate(run.id, "KILLED", None)
            return
        end = max(run.end_time or 0, run.max_wall_ms) or None
        if run.status != "FINISHED" or (end and end != run.end_time):
            self._terminate(run.id, "FINISHED", end)

    def _terminate(self, run_id: str, status: str, end_ms: int | None) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints "View run" links there
            _retry(self.client.set_terminated, run_id, status, end_time=end_ms)


def _open_run(client, experiment_id: str, name: str, source: Path, rel: str,
              parent_id: str | None, start_ms: int | None, flatten: bool) -> _Run:
    source_id = _digest(source)[:24]
    found = _find_run(client, experiment_id, TAG_SOURCE_ID, source_id)
    if found is not None:
        run = _retry(client.get_run, found.info.run_id)  # search results may omit tags: fetch all
        result = RunResult(run.info.run_name or name, run.info.run_id, str(source), created=False)
        return _Run(result, dict(run.data.tags), dict(run.data.params), run.info.status, run.info.end_time)
    tags = {TAG_SOURCE: str(source), TAG_SOURCE_ID: source_id, "vtm.tb_import.relpath": rel,
            TAG_FLATTEN: "true" if flatten else "false",
            "mlflow.source.name": "vtm import-tb", "mlflow.source.type": "LOCAL"}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name)
    result = RunResult(name, run.info.run_id, str(source), created=True)
    return _Run(result, dict(tags), {}, run.info.status, None)


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
    _check_reachable(tracking_uri)

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    report = ImportReport(str(root), tracking_uri, experiment_name)
    client = MlflowClient(tracking_uri)
    sender, default_workers = _sender_for(client, tracking_uri)
    importer = _Importer(client, sender, max(1, workers or default_workers), report, flatten_tags,
                         on_progress, cancel)
    importer.bytes_total = sum(_size(p) for paths in dirs.values() for p in paths)
    try:
        report.experiment_id = _experiment_id(client, experiment_name)
        several = len(dirs) > 1
        firsts = {rel: _first_wall_ms(paths[0]) for rel, paths in dirs.items()}
        parent = None
        if several:
            parent_id = _digest(root)[:24]
            found = _find_run(client, report.experiment_id, TAG_PARENT_ID, parent_id)
            if found is None:
                starts = [ms for ms in firsts.values() if ms]
                created = client.create_run(
                    report.experiment_id, start_time=min(starts) if starts else None,
                    run_name=run_name or root.name,
                    tags={TAG_PARENT_OF: str(root), TAG_PARENT_ID: parent_id,
                          "mlflow.source.name": "vtm import-tb", "mlflow.source.type": "LOCAL"})
                parent = _Run(RunResult(run_name or root.name, created.info.run_id, str(root), True),
                              {}, {}, created.info.status, None)
            else:
                parent = _Run(RunResult(found.info.run_name, found.info.run_id, str(root), False),
                              {}, {}, found.info.status, found.info.end_time)
            report.parent_run_id = parent.id
        for rel, paths in dirs.items():
            if importer.cancelled():
                break
            default_name = rel if rel != "." else root.name
            name = default_name if several else (run_name or default_name)
            run = _open_run(client, report.experiment_id, name, (root / rel).resolve(), rel,
                            parent.id if parent else None, firsts[rel], flatten_tags)
            report.runs.append(run.result)
            importer.import_run(run, rel, paths)
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
