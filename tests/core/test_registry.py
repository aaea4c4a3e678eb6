"""Registry round trips against every backend: a local folder, vtm's aioftp server (in process)
and pyftpdlib (a subprocess), and for the round trip, promotion and concurrent publishers also
Debian's vsftpd (plain and FTPS) and an MS-DOS-listing server (fixtures.ftp.matrix_target).
Faults are in test_registry_faults.py, the CLI in test_registry_cli.py, bundle parsing in
test_registry_bundle.py, what only third-party servers show in test_registry_servers.py."""
from __future__ import annotations

import hashlib
import json
import threading

import pytest
from fixtures.ftp import snapshot, write_checkpoint

from vtm_tui.core.registry import (
    Cancelled,
    InvalidName,
    NotFound,
    RegistryUsageError,
    VersionConflict,
)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_ls_pull_round_trip(matrix_target, tmp_path):
    target = matrix_target
    import torch

    from vtm_tui.core.standard.loader import load_model

    ckpt = write_checkpoint(tmp_path / "best_checkpoint.pth", num_classes=4, metric=0.75)
    with target.open() as reg:
        result = reg.publish_file(ckpt, "clf-model", "dev", set_latest=True, convert_standard=True)
        assert result.created and result.version == 1 and result.latest == 1

        assert reg.list_models() == ["clf-model"]
        assert reg.list_stages("clf-model") == ["dev"]
        [info] = reg.list_versions("clf-model", "dev")
        assert info.version == 1 and info.latest
        m = reg.read_manifest("clf-model", "dev", "latest")
        assert m.format_version == 1 and (m.model, m.stage, m.version) == ("clf-model", "dev", 1)
        assert m.task_type == "classification" and m.num_classes == 4 and m.architecture == "SmallCNN"
        assert m.metric == {"name": "val_accuracy", "value": 0.75}
        assert m.source["type"] == "file" and m.source["file_name"] == "best_checkpoint.pth"
        assert m.torch_version == torch.__version__ and m.created.endswith("Z")
        assert {f.name for f in m.files} == {"checkpoint.pth", "model-standard.pt", "bundle.json"}
        assert m.file("checkpoint.pth").sha256 == sha(ckpt)

        on_disk = target.root / "clf-model" / "dev"
        assert (on_disk / "LATEST").read_text().strip() == "1"
        assert sha(on_disk / "1" / "bundle.tar.gz") == m.bundle_sha256
        assert json.loads((on_disk / "1" / "manifest.json").read_text())["bundle_sha256"] == m.bundle_sha256
        assert not [p for p in on_disk.rglob(".*")]  # no temporary files left

        seen = []
        pulled = reg.pull("clf-model", "dev", "latest", tmp_path / "dl", progress=lambda d, t: seen.append((d, t)))
    assert pulled.path == tmp_path / "dl" / "clf-model" / "dev" / "1"
    assert sorted(p.name for p in pulled.path.iterdir()) == [
        "bundle.json", "checkpoint.pth", "manifest.json", "model-standard.pt"]
    assert sha(pulled.checkpoint) == sha(ckpt)
    assert seen[-1] == (m.bundle_size, m.bundle_size)
    assert [p.name for p in (tmp_path / "dl" / "clf-model" / "dev").iterdir()] == ["1"]
    model, meta = load_model(pulled.path)
    assert meta["format"] == "vtm-standard-v1" and meta["num_classes"] == 4
    assert model(torch.rand(1, 3, 16, 16, device=meta["device"])).shape == (1, 4)


def test_promote_keeps_the_digest(matrix_target, tmp_path):
    target = matrix_target
    first = write_checkpoint(tmp_path / "a.pth", seed=1)
    second = write_checkpoint(tmp_path / "b.pth", seed=2)
    with target.open() as reg:
        reg.publish_file(first, "m", "dev", set_latest=True)
        reg.publish_file(second, "m", "dev", set_latest=True)
        promoted = reg.promote("m", 1, "dev", "release")
        dev1 = reg.read_manifest("m", "dev", 1)
        assert promoted.created and promoted.version == 1 and promoted.latest == 1
        rel = reg.read_manifest("m", "release", "latest")
        assert rel.bundle_sha256 == dev1.bundle_sha256 and rel.files == dev1.files
        assert rel.source == {"type": "promotion", "from_stage": "dev", "from_version": 1, "origin": dev1.source}
        assert rel.metric == dev1.metric and rel.num_classes == dev1.num_classes
        assert sha(target.root / "m" / "release" / "1" / "bundle.tar.gz") == dev1.bundle_sha256

        again = reg.promote("m", 1)  # same content is already in release: nothing to do
        assert not again.created and again.version == 1
        latest = reg.promote("m", "latest")  # dev latest is 2
        assert latest.version == 2 and latest.manifest.bundle_sha256 == reg.read_manifest("m", "dev", 2).bundle_sha256
        assert reg.latest("m", "release") == 2
        with pytest.raises(RegistryUsageError):
            reg.promote("m", 1, "dev", "dev")
        with pytest.raises(NotFound):
            reg.promote("m", 9)


def test_republish_is_a_no_op_and_versions_are_immutable(target, tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth", seed=1)
    other = write_checkpoint(tmp_path / "b.pth", seed=2)
    with target.open() as reg:
        assert reg.publish_file(ckpt, "m", "dev", version=5).created
        before = snapshot(target.root)
        same = reg.publish_file(ckpt, "m", "dev", version=5)
        assert not same.created and same.version == 5
        auto = reg.publish_file(ckpt, "m", "dev")  # same digest as an existing version
        assert not auto.created and auto.version == 5
        with pytest.raises(VersionConflict, match="immutable"):
            reg.publish_file(other, "m", "dev", version=5)
        assert snapshot(target.root) == before
        nxt = reg.publish_file(other, "m", "dev")
        assert nxt.created and nxt.version == 6  # highest existing + 1
        assert reg.versions("m", "dev") == [5, 6]


def _publish_in_threads(target, jobs):
    """Run publish jobs (kwargs) at the same moment, each with its own connection."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def work(i, job):
        with target.open() as reg:
            reg.list_models()  # connect before the race starts
            barrier.wait()
            try:
                results[i] = reg.publish_file(**job)
            except Exception as exc:  # noqa: BLE001 - collected for the assertions
                results[i] = exc

    threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_publishers_of_the_same_version_exactly_one_wins(matrix_target, tmp_path):
    target = matrix_target
    a = write_checkpoint(tmp_path / "a.pth", seed=1)
    b = write_checkpoint(tmp_path / "b.pth", seed=2)
    for version in (1, 2, 3):
        results = _publish_in_threads(target, [
            dict(path=a, model="m", stage="dev", version=version, set_latest=True),
            dict(path=b, model="m", stage="dev", version=version, set_latest=True)])
        wins = [r for r in results if not isinstance(r, Exception)]
        losses = [r for r in results if isinstance(r, Exception)]
        assert len(wins) == 1 and wins[0].created, results
        assert len(losses) == 1 and isinstance(losses[0], VersionConflict), results
        with target.open() as reg:
            assert reg.read_manifest("m", "dev", version).bundle_sha256 == wins[0].manifest.bundle_sha256
        a, b = b, a  # the other one starts first-ish next round
    assert not list((target.root / "m" / "dev").glob(".incoming-*"))


def test_two_publishers_of_different_versions_latest_ends_at_the_higher(matrix_target, tmp_path):
    target = matrix_target
    files = [write_checkpoint(tmp_path / f"{i}.pth", seed=i) for i in range(6)]
    for round_ in range(3):
        low, high = 2 * round_ + 1, 2 * round_ + 2
        results = _publish_in_threads(target, [
            dict(path=files[2 * round_ + 1], model="m", stage="dev", version=high, set_latest=True),
            dict(path=files[2 * round_], model="m", stage="dev", version=low, set_latest=True)])
        assert all(r.created for r in results), results
        with target.open() as reg:
            assert reg.versions("m", "dev") == list(range(1, high + 1))
            assert reg.latest_pointer("m", "dev") == high
    # auto-numbered concurrent publishers: both committed, distinct versions, LATEST the higher
    x = write_checkpoint(tmp_path / "x.pth", seed=10)
    y = write_checkpoint(tmp_path / "y.pth", seed=11)
    results = _publish_in_threads(target, [dict(path=x, model="n", stage="dev", set_latest=True),
                                           dict(path=y, model="n", stage="dev", set_latest=True)])
    assert sorted(r.version for r in results) == [1, 2], results
    with target.open() as reg:
        assert reg.latest_pointer("n", "dev") == 2


def test_latest_is_rewritten_when_a_slower_writer_set_it_back(target, tmp_path):
    """The lost update of a LATEST race, replayed step by step: a writer for v1 that wrote after
    the writer for v2 re-checks and restores v2."""
    with target.open() as reg:
        reg.publish_file(write_checkpoint(tmp_path / "a.pth", seed=1), "m", "dev", set_latest=True)
        reg.publish_file(write_checkpoint(tmp_path / "b.pth", seed=2), "m", "dev", set_latest=True)
        (target.root / "m" / "dev" / "LATEST").write_text("1\n")  # v1's late write landed last
        assert reg.advance_latest("m", "dev", 1) == 2  # ...and v1's writer re-checks
        assert reg.latest_pointer("m", "dev") == 2
        reg.publish_file(write_checkpoint(tmp_path / "c.pth", seed=3), "m", "dev")  # no set_latest
        assert reg.advance_latest("m", "dev", 2) == 2  # v3 did not ask: LATEST stays
        assert reg.advance_latest("m", "dev", 1) == 2  # never backwards


def test_latest_missing_garbled_or_dangling_falls_back(target, tmp_path):
    with target.open() as reg:
        for seed in (1, 2):
            reg.publish_file(write_checkpoint(tmp_path / f"{seed}.pth", seed=seed), "m", "dev", set_latest=True)
        stage = target.root / "m" / "dev"
        # an uncommitted version 3: claimed directory and bundle, no manifest
        (stage / "3").mkdir()
        (stage / "3" / "bundle.tar.gz").write_bytes(b"partial")
        assert reg.versions("m", "dev") == [1, 2]
        for content in (None, b"", b"garbage\x00\xff", b"7\n", b"3\n", b"-1", b"1" * 100):
            if content is None:
                (stage / "LATEST").unlink()
            else:
                (stage / "LATEST").write_bytes(content)
            assert reg.latest("m", "dev") == 2, content
            assert reg.read_manifest("m", "dev", "latest").version == 2
            assert [i.version for i in reg.list_versions("m", "dev") if i.latest] == [2]
        (stage / "LATEST").write_bytes(b"1\n")  # a valid pointer is honoured, even if not the highest
        assert reg.latest("m", "dev") == 1
        assert reg.pull("m", "dev", "latest", tmp_path / "dl").version == 1
        (stage / "LATEST").write_bytes(b"garbage")
        assert reg.advance_latest("m", "dev", 2) == 2  # a writer repairs a garbled LATEST
        assert (stage / "LATEST").read_text().strip() == "2"
        with pytest.raises(NotFound):
            reg.read_manifest("m", "dev", 3)
        with pytest.raises(NotFound):
            reg.pull("m", "release", "latest", tmp_path / "dl")


BAD_NAMES = ["a/b", "..", "a..b", "../x", "/abs", "x\r\nDELE y", "x\ny", "x\0y", "", ".hidden", "-x",
             "a" * 129, "a b", "ä"]


def test_names_are_checked_before_any_io(target, tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    with target.open() as reg:
        for bad in BAD_NAMES:
            with pytest.raises(InvalidName):
                reg.publish_file(ckpt, bad, "dev")
            with pytest.raises(InvalidName):
                reg.pull(bad, "dev", "latest", tmp_path / "dl")
            with pytest.raises(InvalidName):
                reg.promote(bad, 1)
        for stage in ("prod", "Dev", "dev/..", "dev\n", ""):
            with pytest.raises(InvalidName):
                reg.publish_file(ckpt, "m", stage)
        for version in ("0", "-1", "1a", "01", "1/2", "1\n", 0, -3, True, "../1"):
            with pytest.raises(InvalidName):
                reg.read_manifest("m", "dev", version)
            with pytest.raises(InvalidName):
                reg.publish_file(ckpt, "m", "dev", version=version)
        assert reg.list_models() == []
    assert snapshot(target.root) == {}
    assert not (tmp_path / "dl").exists()


def test_progress_and_cancel(target, tmp_path):
    ckpt = write_checkpoint(tmp_path / "big.pth", extra_floats=1_500_000)  # ~6 MB
    with target.open() as reg:
        cancel = threading.Event()

        def cancel_at_first_progress(done, total):
            cancel.set()

        with pytest.raises(Cancelled):
            reg.publish_file(ckpt, "m", "dev", set_latest=True, progress=cancel_at_first_progress, cancel=cancel)
        assert reg.versions("m", "dev") == [] and reg.latest_pointer("m", "dev") is None
        assert not [p for p in snapshot(target.root) if "incoming" in p or "manifest" in p]

        seen = []
        result = reg.publish_file(ckpt, "m", "dev", set_latest=True, progress=lambda d, t: seen.append((d, t)))
        assert seen[-1][0] == seen[-1][1] == ckpt.stat().st_size
        assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))

        cancel = threading.Event()
        with pytest.raises(Cancelled):
            reg.pull("m", "dev", 1, tmp_path / "dl", cancel=cancel, progress=lambda d, t: cancel.set())
        assert not any((tmp_path / "dl").rglob("*.*")) and not (tmp_path / "dl" / "m" / "dev" / "1").exists()
        assert reg.pull("m", "dev", 1, tmp_path / "dl").manifest.bundle_sha256 == result.manifest.bundle_sha256


def test_pull_verify_first_and_keep_bundle_and_repull(target, tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    with target.open() as reg:
        published = reg.publish_file(ckpt, "m", "dev")
        first = reg.pull("m", "dev", 1, tmp_path / "dl", verify_first=True)
        assert sha(first.checkpoint) == sha(ckpt)
        (first.path / "stray.txt").write_text("old")
        again = reg.pull("m", "dev", 1, tmp_path / "dl", keep_bundle=True)  # replaces the old copy
        assert sorted(p.name for p in again.path.iterdir()) == [
            "bundle.json", "bundle.tar.gz", "checkpoint.pth", "manifest.json"]
        assert sha(again.path / "bundle.tar.gz") == published.manifest.bundle_sha256
        assert [p.name for p in (tmp_path / "dl" / "m" / "dev").iterdir()] == ["1"]


def test_publish_refuses_what_it_cannot_publish(target, tmp_path):
    with target.open() as reg:
        with pytest.raises(RegistryUsageError, match="no such file"):
            reg.publish_file(tmp_path / "missing.pth", "m", "dev")
        (tmp_path / "model.onnx").write_bytes(b"x")
        with pytest.raises(RegistryUsageError, match=".pth or .pt"):
            reg.publish_file(tmp_path / "model.onnx", "m", "dev")
        from vtm_tui.core.standard.loader import CheckpointError

        (tmp_path / "junk.pth").write_bytes(b"not a torch file")
        with pytest.raises(CheckpointError):
            reg.publish_file(tmp_path / "junk.pth", "m", "dev")
        import torch

        torch.save({"w": torch.zeros(3)}, tmp_path / "sd.pt")
        with pytest.raises(CheckpointError, match="architecture"):
            reg.publish_file(tmp_path / "sd.pt", "m", "dev", convert_standard=True)
        result = reg.publish_file(tmp_path / "sd.pt", "m", "dev")  # plain weights, no conversion: fine
        assert result.manifest.checkpoint_name == "checkpoint.pt" and result.manifest.task_type is None
    assert [p for p in snapshot(target.root) if "/1/" in p] == ["m/dev/1/bundle.tar.gz", "m/dev/1/manifest.json"]
