"""Pilot tests of the Registry tab on real registries: a local folder, vtm's own aioftp server
in this process, a throttled pyftpdlib server (to cancel a pull halfway), and a port where
nothing listens. Versions are published with the core API, then browsed and pulled through
the UI; one SVG snapshot on the pinned demo registry of vtm_tui/ui/demo/pinned_registry.py."""
from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from pathlib import Path

import pytest
from fixtures.ftp import PASSWORD, FtpServerProc, make_target, write_checkpoint
from fixtures.tui import screen_text, wait_for, wait_for_text
from fixtures.vtm import make_vtm_env
from textual.widgets import Input, ProgressBar, Switch

from vtm_tui.core.registry import Registry, open_backend
from vtm_tui.settings import PACKAGED_CATALOG
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_registry import fill_demo_registry
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.screens.registry_dialogs import (
    ConvertDialog,
    PasswordDialog,
    PublishBestDialog,
    PublishDialog,
    PullDialog,
)
from vtm_tui.ui.tabs.registry.pane import RegistryPane
from vtm_tui.ui.tabs.registry.transfer import TransferMeter, TransferProgress
from vtm_tui.ui.tabs.registry.tree import NodeRef
from vtm_tui.ui.widgets.path_suggester import complete_path

CLS = "classification-best-model"  # in the packaged catalog's registryModels: shown with its title
OTHER = "other-model"  # in no catalog


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_for(tmp_path: Path, url: str, password: str | None = PASSWORD, catalog: Path = PACKAGED_CATALOG) -> VtmApp:
    extra = {"VTM_FTP_PASSWORD": password} if password else {"NETRC": str(tmp_path / "no-netrc")}
    env = make_vtm_env(tmp_path, VTM_REGISTRY_URL=url, VTM_FTP_TIMEOUT="10",
                       MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       TRAINING_CATALOG_PATH=str(catalog), **extra)
    return VtmApp(env.settings)


async def open_registry_tab(pilot) -> RegistryPane:
    await pilot.press("4")
    pane = pilot.app.query_one(RegistryPane)
    await wait_for(pilot, lambda: pane.settled, timeout=30, what="the registry to be read")
    return pane


def status(pane: RegistryPane) -> str:
    return str(pane.query_one("#registry-status").render())


async def type_in(pilot, field: Input, text: str) -> None:
    """Focus a dialog's field, clear it and type text as key presses."""
    field.focus()
    await pilot.pause()
    field.value = ""
    await pilot.press(*text)


@pytest.mark.parametrize("kind", ["local", "aioftp"])
async def test_browse_two_models_and_pull_a_version(kind, request, tmp_path):
    target = make_target(kind, request, tmp_path)
    checkpoints = [write_checkpoint(tmp_path / f"ckpt{i}.pth", seed=i, metric=0.5 + i / 10) for i in range(3)]

    def publish() -> None:  # with the core API, as `vtm registry publish` does; blocking: a thread
        with target.open() as registry:
            registry.publish_file(checkpoints[0], CLS, "dev", set_latest=True)
            registry.publish_file(checkpoints[1], CLS, "dev", set_latest=True)
            registry.publish_file(checkpoints[2], OTHER, "release", set_latest=True)

    await asyncio.to_thread(publish)
    app = app_for(tmp_path, target.url)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_registry_tab(pilot)
        # the side panel shows the manifest once the screen has been laid out again
        text = await wait_for_text(pilot, "catalog      Classification Model", "sha256")
        for shown in (CLS, "Classification Model", OTHER, "dev  2 versions", "release  1 version",
                      "v2  LATEST", "v1  val_accuracy 0.5"):
            assert shown in text, text
        # The cursor starts on the newest version of the first model, its manifest beside it.
        assert pane.tree.cursor_ref == NodeRef(CLS, "dev", 2)
        assert f"{CLS} / dev / v2  LATEST" in text
        await pilot.press("down")  # v1, not the LATEST one
        await wait_for(pilot, lambda: f"{CLS} / dev / v1" in screen_text(app), what="v1's manifest")
        manifest = pane.listing.info(NodeRef(CLS, "dev", 1)).manifest
        text = screen_text(app)
        for shown in ("sha256", manifest.bundle_sha256[:40], "val_accuracy 0.5", "classification",
                      "checkpoint.pth", "bundle.json", f"file {checkpoints[0].name}", "torch"):
            assert shown in text, text

        await pilot.press("p")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, PullDialog) and app.screen)
        assert dialog.query_one("#pull-dest", Input).value == "./downloads"  # the catalog's default
        await pilot.press("ctrl+a", "ctrl+k", *"models/pulled", "enter")
        await wait_for(pilot, lambda: "Pulled" in status(pane) and not pane.busy, timeout=30,
                       what="the pull to finish")
        folder = tmp_path / "models/pulled" / CLS / "dev" / "1"
        assert sha256(folder / "checkpoint.pth") == sha256(checkpoints[0])
        assert sha256(folder / "checkpoint.pth") == manifest.file("checkpoint.pth").sha256
        assert (folder / "manifest.json").is_file()
        text = screen_text(app)
        assert f"✓ Pulled {CLS}/dev/1 into models/pulled/{CLS}/dev/1" in text, text
        assert f"sha256 {manifest.bundle_sha256[:12]} verified" in status(pane)
        assert not pane.has_class("-transfer")  # the progress bar is gone


async def test_cancelled_pull_leaves_nothing(tmp_path):
    root = tmp_path / "ftp-root"
    root.mkdir()
    big = write_checkpoint(tmp_path / "big.pth", extra_floats=1_500_000)  # ~6 MB
    with Registry(open_backend(str(root))) as registry:  # straight onto the server's disk: fast
        registry.publish_file(big, CLS, "release", set_latest=True)
    server = FtpServerProc(root, rate=250_000).start()  # ~25 s for the whole bundle
    try:
        app = app_for(tmp_path, server.url())
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await open_registry_tab(pilot)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, PullDialog))
            await pilot.press("enter")
            bar = pane.query_one("#transfer-progress", ProgressBar)
            await wait_for(pilot, lambda: bar.progress > 0, timeout=20, what="the pull to start moving")
            assert "MB/s" in screen_text(app)
            assert pane.check_action("cancel_transfer", ()) is True
            await pilot.press("c")
            await wait_for(pilot, lambda: "cancelled" in status(pane) and not pane.busy, timeout=10,
                           what="the cancel")
            assert "nothing was written to downloads" in screen_text(app)
            assert not (tmp_path / "downloads").exists(), list((tmp_path / "downloads").rglob("*"))
            assert pane.check_action("cancel_transfer", ()) is False
    finally:
        server.stop()


async def test_unreachable_registry_is_a_status_and_the_app_keeps_working(tmp_path):
    url = f"ftp://vtm@127.0.0.1:{free_port()}/registry"  # nothing listens there
    app = app_for(tmp_path, url)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_registry_tab(pilot)
        assert pane.error and "connection refused" in pane.error
        text = screen_text(app)
        assert "✗ Registry unreachable" in text and "connection refused" in text, text
        await wait_for(pilot, lambda: "r Refresh" in screen_text(app), what="the tab's keys in the footer")
        await pilot.press("p")  # nothing to pull: a warning, no crash
        await pilot.pause(0.2)
        assert any("Select a model" in str(n.message) for n in app._notifications)
        await pilot.press("r")
        await wait_for(pilot, lambda: pane.loads == 2 and pane.settled, what="the retry")
        assert "connection refused" in status(pane)
        await pilot.press("u")  # the publish form still opens (and closes)
        await wait_for(pilot, lambda: isinstance(app.screen, PublishDialog))
        await pilot.press("escape")
        await pilot.press("1")
        await wait_for(pilot, lambda: app.tabs.active == "launcher", what="the Launcher tab")
        await pilot.press("4")
        await wait_for(pilot, lambda: app.tabs.active == "registry", what="the Registry tab")


async def test_ftp_password_is_asked_in_the_tab(request, tmp_path):
    target = make_target("aioftp", request, tmp_path)
    target.root.mkdir(parents=True)
    app = app_for(tmp_path, target.url, password=None)  # no VTM_FTP_PASSWORD, no ~/.netrc
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        pane = app.query_one(RegistryPane)
        await wait_for(pilot, lambda: isinstance(app.screen, PasswordDialog), what="the password dialog")
        await pilot.press(*"wrong", "enter")
        await wait_for(pilot, lambda: pane.settled, what="the refused login")
        assert pane.error and pane.ftp_password.answer is None  # forgotten: asked again next time
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, PasswordDialog), what="the second ask")
        await pilot.press(*PASSWORD, "enter")
        await wait_for(pilot, lambda: pane.settled and pane.listing is not None, what="the registry")
        assert "No models in" in screen_text(app)
        assert PASSWORD not in screen_text(app)


async def test_publish_promote_convert_through_the_tab(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "outputs" / "checkpoints" / "best.pth", num_classes=3)
    app = app_for(tmp_path, str(tmp_path / "reg"))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_registry_tab(pilot)
        assert "No models in reg yet" in screen_text(app)

        await pilot.press("u")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, PublishDialog) and app.screen)
        path = dialog.query_one("#publish-path", Input)
        for typed, completed in (("ou", "outputs/"), ("c", "outputs/checkpoints/"),
                                 ("b", "outputs/checkpoints/best.pth")):
            await pilot.press(*typed)
            await wait_for(pilot, lambda want=completed: getattr(path, "_suggestion", "") == want, what=completed)
            await pilot.press("tab")  # takes the completion, as in a shell
            assert path.value == completed
        await pilot.press("tab")  # complete: on to the model name
        assert app.focused is dialog.query_one("#publish-model", Input)
        await pilot.press(*"classification-best-model")
        dialog.query_one("#publish-latest", Switch).value = True
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Published" in status(pane) and pane.settled, timeout=30,
                       what="the publish")
        assert status(pane).startswith(f"✓ Published {CLS}/dev/1")
        assert pane.tree.cursor_ref == NodeRef(CLS, "dev", 1)

        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "Promoted" in status(pane) and pane.settled, timeout=30, what="the promote")
        assert f"Promoted {CLS}/dev/1 to {CLS}/release/1" in status(pane)
        assert pane.tree.cursor_ref == NodeRef(CLS, "release", 1)
        release_1 = pane.listing.info(NodeRef(CLS, "release", 1)).manifest
        assert release_1.bundle_sha256 == pane.listing.info(NodeRef(CLS, "dev", 1)).manifest.bundle_sha256

        await pilot.press("s")
        convert = await wait_for(pilot, lambda: isinstance(app.screen, ConvertDialog) and app.screen)
        assert convert.query_one("#convert-classes", Input).value == "3"  # from the manifest
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Converted" in status(pane) and pane.settled, timeout=60, what="the convert")
        converted = pane.listing.info(NodeRef(CLS, "release", 2))
        assert converted.latest and converted.manifest.has_standard
        assert converted.manifest.source["type"] == "conversion"
        assert "converted from release/1" in screen_text(app)
        assert sha256(checkpoint) == converted.manifest.file("checkpoint.pth").sha256


USER_CATALOG = """\
tasks:
  - taskType: user-unet
    baseTaskType: segmentation
    title: The user's UNet
    runner: {startMethod: python_script, target: project/train.py}
    mlflow: {metric: val_miou, mode: max, modelName: unet-seg}
    model:
      arch: ./project/models.py:UNetSegmenter
      archKwargs: {num_classes: 3, width: 4}
      inputShape: [3, 16, 16]
      classNames: [background, lane, car]
"""


async def test_a_user_network_is_published_and_converted_with_its_spec_through_the_tab(tmp_path):
    """The user's own UNet (dict output) as a DataParallel checkpoint: the publish dialog takes its
    architecture (a file of the user's tree, relative to the working folder) and its spec, over
    the catalog task's model: block; a malformed field is said in the dialog; the side panel shows
    the program, the spec and the recorded difference; converting a version published without a
    program takes what the dialog leaves empty from the model: block."""
    import shutil

    import torch
    from fixtures.user_project import MODELS, user_models

    (tmp_path / "project").mkdir()
    shutil.copy(MODELS, tmp_path / "project" / "models.py")
    torch.manual_seed(0)
    net = user_models().build_model("unet", num_classes=3, width=4).eval()
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
               tmp_path / "unet_dp.pth")
    with Registry(open_backend(str(tmp_path / "reg"))) as registry:  # v1: the checkpoint alone
        registry.publish_file(tmp_path / "unet_dp.pth", "unet-seg", "dev", set_latest=True)
    arch, kwargs = "./project/models.py:UNetSegmenter", '{"num_classes": 3, "width": 4}'
    (tmp_path / "catalog.yaml").write_text(USER_CATALOG)
    app = app_for(tmp_path, str(tmp_path / "reg"), catalog=tmp_path / "catalog.yaml")
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_registry_tab(pilot)
        assert pane.tree.cursor_ref == NodeRef("unet-seg", "dev", 1)
        await wait_for_text(pilot, "none: s converts the checkpoint to model-standard.pt2")

        await pilot.press("u")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, PublishDialog) and app.screen)
        assert dialog.query_one("#publish-arch", Input).disabled  # the spec rows wait for the switch
        dialog.query_one("#publish-path", Input).value = "unet_dp.pth"
        dialog.query_one("#publish-model", Input).value = "unet-seg"
        dialog.query_one("#publish-convert", Switch).value = True
        await pilot.pause()
        assert not dialog.query_one("#publish-arch", Input).disabled
        dialog.query_one("#publish-task").value = "segmentation"
        for key, value in (("classes", "3"), ("arch-kwargs", kwargs), ("mean", "0.5"), ("std", "0.25"),
                           ("class-names", "sky, road, car"), ("output-key", "out")):
            dialog.query_one(f"#publish-{key}", Input).value = value
        await type_in(pilot, dialog.query_one("#publish-arch", Input), arch)
        await type_in(pilot, dialog.query_one("#publish-input-shape", Input), "3,16")
        await pilot.press("enter")
        await wait_for_text(pilot, "input shape expects 3 positive integers like N,N,N, got '3,16'")
        assert app.screen is dialog  # nothing ran, nothing lost
        await type_in(pilot, dialog.query_one("#publish-input-shape", Input), "3,16,16")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Published" in status(pane) and pane.settled, timeout=120,
                       what="the conversion and publish")
        assert pane.tree.cursor_ref == NodeRef("unet-seg", "dev", 2)
        m = pane.listing.info(NodeRef("unet-seg", "dev", 2)).manifest
        assert "model-standard.pt2 within" in status(pane)
        assert m.has_program and m.spec["architecture"] == arch
        assert (m.spec["input_shape"], m.spec["class_names"], m.spec["output_key"]) == (
            [3, 16, 16], ["sky", "road", "car"], "out")
        assert (m.spec["mean"], m.spec["std"], m.spec["arch_kwargs"]) == ([0.5], [0.25], json.loads(kwargs))
        assert m.conversion["max_abs_diff"] < 1e-5
        assert "stripped the key prefix 'module.'" in m.conversion["notes"]
        text = await wait_for_text(pilot, "model-standard.pt2 (torch.export)", "max abs diff")
        for shown in ("segmentation 3x16x16 float32 RGB, mean [0.5] std [0.25]", "-> logits['out'] (3 classes)",
                      "sky, road, car", f"max abs diff {m.conversion['max_abs_diff']:.2g} (< 1e-05)",
                      "stripped the key prefix 'module.'"):
            assert shown in text, text

        await pilot.press("s")  # v2 holds a program already: nothing to convert
        await wait_for(pilot, lambda: any("already holds model-standard.pt2" in str(n.message)
                                          for n in app._notifications), what="the notice")
        pane.tree.show_listing(pane.listing, NodeRef("unet-seg", "dev", 1))
        await wait_for(pilot, lambda: pane.tree.cursor_ref == NodeRef("unet-seg", "dev", 1), what="v1")
        await pilot.press("s")
        convert = await wait_for(pilot, lambda: isinstance(app.screen, ConvertDialog) and app.screen)
        assert convert.query_one("#convert-arch", Input).value == ""  # v1 says nothing: the block will
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: ("Converted" in status(pane) or "failed" in status(pane)) and pane.settled,
                       timeout=120, what="the convert")
        assert status(pane).startswith("✓ Converted unet-seg/dev/1"), status(pane)
        converted = pane.listing.info(NodeRef("unet-seg", "dev", 3))
        assert converted.latest and converted.manifest.has_program
        assert converted.manifest.source["type"] == "conversion"
        assert converted.manifest.spec["class_names"] == ["background", "lane", "car"]  # the model: block's
        assert converted.manifest.spec["architecture"] == arch and converted.manifest.task_type == "segmentation"
        assert converted.manifest.conversion["max_abs_diff"] < 1e-5
        assert "within" in status(pane)


async def test_converting_torchscript_through_the_tab_needs_the_trust_switch(tmp_path):
    """The publish dialog converts a TorchScript file only with its trust switch on (torch.jit.load
    runs the file's code); the switch is off each time the dialog opens."""
    import torch
    from fixtures.user_project import user_models

    torch.manual_seed(0)
    net = user_models().build_model("unet", num_classes=3, width=4).eval()
    torch.jit.save(torch.jit.trace(net, (torch.rand(2, 3, 16, 16),), strict=False), tmp_path / "traced.pt")
    app = app_for(tmp_path, str(tmp_path / "reg"))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_registry_tab(pilot)
        for trusted in (False, True):
            await pilot.press("u")
            dialog = await wait_for(pilot, lambda: isinstance(app.screen, PublishDialog) and app.screen)
            trust = dialog.query_one("#publish-trust-torchscript", Switch)
            assert not trust.value  # off each time, greyed out while not converting
            assert trust.disabled is not dialog.query_one("#publish-convert", Switch).value
            dialog.query_one("#publish-path", Input).value = "traced.pt"
            dialog.query_one("#publish-model", Input).value = "ts"
            dialog.query_one("#publish-convert", Switch).value = True
            await pilot.pause()
            assert not trust.disabled
            trust.value = trusted
            dialog.query_one("#publish-input-shape", Input).value = "3,16,16"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda want=("Published" if trusted else "failed"): want in status(pane)
                           and pane.settled, timeout=120, what="the publish")
            if not trusted:
                assert "traced.pt is TorchScript, which runs its own code when loaded: pass --trust-torchscript" \
                    in status(pane), status(pane)
                assert not [p for p in (tmp_path / "reg").rglob("*") if p.is_file() and p.suffix != ".json"]
        assert status(pane).startswith("✓ Published ts/dev/1"), status(pane)
        manifest = pane.listing.info(NodeRef("ts", "dev", 1)).manifest
        assert manifest.has_program and manifest.conversion["source"] == "torchscript"


async def test_publish_best_without_runs_is_a_status(tmp_path):
    app = app_for(tmp_path, str(tmp_path / "reg"))  # its MLflow store (SQLite) has no runs at all
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_registry_tab(pilot)
        await pilot.press("b")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, PublishBestDialog) and app.screen)
        await wait_for(pilot, lambda: "ranks runs by val_accuracy (max), publishes to" in screen_text(app),
                       what="the task's registry model")
        assert dialog.query_one("#best-task").value == "classification"
        # the spec rows: overrides of the task's model: block, checked before anything runs
        await type_in(pilot, dialog.query_one("#best-input-shape", Input), "3,32")
        await pilot.press("ctrl+s")
        await wait_for_text(pilot, "input shape expects 3 positive integers like N,N,N, got '3,32'")
        assert app.screen is dialog
        await type_in(pilot, dialog.query_one("#best-input-shape", Input), "3,32,32")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "failed" in status(pane) and not pane.busy, timeout=60,
                       what="publish-best to fail")
        assert status(pane).startswith("✗ Publish the best classification run failed: ")
        assert pane.listing is not None and not pane.listing.models  # nothing was published
        assert pane._last_best.spec.input_shape == (3, 32, 32)  # what the job was given


def test_the_panel_says_what_program_a_version_holds():
    from types import SimpleNamespace

    from vtm_tui.core.standard.spec import ModelSpec
    from vtm_tui.ui.tabs.registry.detail import program_rows

    def shown(**manifest) -> list[tuple[str, str]]:
        fields = dict(has_standard=True, has_program=True, standard_name="model-standard.pt2", spec=None,
                      conversion=None) | manifest
        return [(label, str(value)) for label, value in program_rows(SimpleNamespace(**fields))]

    assert shown(has_standard=False, has_program=False) == [
        ("program", "none: s converts the checkpoint to model-standard.pt2")]
    assert shown(has_program=False, standard_name="model-standard.pt") == [
        ("program", "model-standard.pt (Torch Standard v1): s adds a v2 program")]
    imagenet = ModelSpec("classification", (3, 224, 224), 1000, mean=(0.485, 0.456, 0.406),
                         std=(0.229, 0.224, 0.225))
    rows = dict(shown(spec=imagenet.to_json(), conversion={"source": "mlflow", "max_abs_diff": 3.1e-6,
                                                           "tolerance": 1e-5, "notes": ["pt2 as MLflow wrote it"]}))
    assert rows["spec"] == imagenet.describe()
    assert rows["class names"].endswith("class_11, ... (1000 in all)")  # not a thousand names
    assert rows["conversion"] == "from mlflow: max abs diff 3.1e-06 (< 1e-05)" and rows[""] == "pt2 as MLflow wrote it"
    assert dict(shown(spec={"task_type": "nope"}))["spec"].startswith("spec: ")  # said, not raised


def test_path_completion(tmp_path):
    (tmp_path / "outputs" / "checkpoints").mkdir(parents=True)
    (tmp_path / "outputs" / "checkpoints" / "best.pth").write_bytes(b"x")
    (tmp_path / "outputs" / "notes.txt").write_text("x")
    (tmp_path / "other").mkdir()
    assert complete_path("out", tmp_path) == "outputs/"
    assert complete_path("outputs/c", tmp_path) == "outputs/checkpoints/"
    assert complete_path("outputs/checkpoints/b", tmp_path, suffixes=(".pth",)) == "outputs/checkpoints/best.pth"
    assert complete_path("outputs/n", tmp_path, suffixes=(".pth",)) is None  # not a checkpoint
    assert complete_path("o", tmp_path) == "other/"  # several: the first (no longer common prefix)
    assert complete_path("outputs/", tmp_path, dirs_only=True) == "outputs/checkpoints/"
    assert complete_path(str(tmp_path / "oth"), "/") == str(tmp_path / "other") + "/"
    assert complete_path("missing/x", tmp_path) is None


def test_progress_messages_coalesce():
    posted: list[TransferProgress] = []
    now = [0.0]
    meter = TransferMeter(posted.append, "Pulling m/dev/1", clock=lambda: now[0])
    for block in range(1, 101):  # 100 blocks in 50 ms: one message, then the last
        now[0] = block * 0.0005
        meter(block * 1_000_000, 100_000_000)
    assert [p.done for p in posted] == [1_000_000, 100_000_000]
    assert posted[-1].rate == pytest.approx(100_000_000 / 0.05)
    assert posted[0].can_replace(posted[1])


def test_tab_snapshot_120x40(snap_compare, tmp_path):
    settings, sources = make_demo(tmp_path)
    fill_demo_registry(settings)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: "● up" in screen_text(pilot.app), what="the pinned server status")
        pane = await open_registry_tab(pilot)
        assert pane.tree.cursor_ref == NodeRef(CLS, "dev", 3)
        await pilot.pause(0.2)

    assert snap_compare(VtmApp(settings, sources), terminal_size=(120, 40), run_before=run_before)
