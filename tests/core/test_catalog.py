"""catalog.yaml: loading, error reporting (file:line:key), form fields, values -> argv."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vtm_tui.core.catalog import (
    CatalogError,
    CatalogErrors,
    FieldValueError,
    FieldValueErrors,
    UnknownTask,
    load_catalog,
)
from vtm_tui.settings import PACKAGED_CATALOG

REPO = Path(__file__).resolve().parents[2]

# The two YAML blocks of the original guide (sections 5 and 7), verbatim.
GUIDE_REGISTRY_MODELS = """\
registryModels:
  - id: classification
    title: Classification Model
    taskType: classification
    modelName: classification-best-model
    defaultStage: release
    defaultVersion: latest
    defaultDestinationDir: ./backend/artifacts/downloads
  - id: segmentation
    title: Segmentation Model
    taskType: segmentation
    modelName: segmentation-best-model
    defaultStage: release
    defaultVersion: latest
    defaultDestinationDir: ./backend/artifacts/downloads
"""

GUIDE_EXTRA_FIELDS = """\
tasks:
  - taskType: classification
    baseTaskType: classification
    runner:
      startMethod: python_script
      target: /abs/path/to/your/train.py
    extraFields:
      - name: task_name
        valueType: str
        required: true
        default: classification
      - name: profile
        valueType: str
        type: select
        default: quick
        choices: [quick, full]
      - name: dry_run
        valueType: bool
        type: boolean
        default: false
"""

# A valid task that malformed cases append to; its lines are 1-5.
TASK = """\
tasks:
  - taskType: t
    runner:
      startMethod: command
      target: echo hi
"""
CLASSIFICATION = """\
tasks:
  - taskType: classification
    runner: {startMethod: command, target: train}
"""


def write(tmp_path: Path, text: str, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str):
    return load_catalog(write(tmp_path, text))


def errors_of(tmp_path: Path, text: str) -> list[CatalogError]:
    with pytest.raises(CatalogErrors) as caught:
        load_text(tmp_path, text)
    return caught.value.errors


# --- valid catalogs ---------------------------------------------------------


def test_default_catalog_loads():
    catalog = load_catalog(PACKAGED_CATALOG)
    assert [t.task_type for t in catalog.enabled_tasks()] == ["classification", "segmentation"]
    classification, segmentation = catalog.tasks
    assert classification.runner.start_method == "python_module"
    assert classification.runner.target == "vtm_tui.train.classification"
    assert classification.runner.target_env_var == "CLASSIFICATION_SCRIPT_PATH"
    assert segmentation.runner.target_env_var == "SEGMENTATION_SCRIPT_PATH"
    assert classification.mlflow.metric == "val_accuracy"
    assert segmentation.mlflow.metric == "val_miou"
    assert segmentation.mlflow.model_name == "segmentation-best-model"
    assert [m.id for m in catalog.registry_models] == ["classification", "segmentation"]
    assert {m.default_destination_dir for m in catalog.registry_models} == {"./downloads"}
    segmentation_defaults = {f.name: f.default for f in segmentation.form_fields()}
    assert segmentation_defaults["num_classes"] == 3
    assert segmentation_defaults["image_size"] == 64
    assert segmentation_defaults["samples"] == 256


def test_repo_root_catalog_is_the_default_one():
    root = REPO / "catalog.yaml"
    assert root.is_symlink() and root.resolve() == PACKAGED_CATALOG.resolve()
    assert [t.task_type for t in load_catalog(root).tasks] == ["classification", "segmentation"]


def test_guide_registry_models_block_loads_unchanged(tmp_path):
    catalog = load_text(tmp_path, TASK + GUIDE_REGISTRY_MODELS)
    model = catalog.registry_models[0]
    assert (model.id, model.title, model.task_type, model.model_name) == (
        "classification", "Classification Model", "classification", "classification-best-model")
    assert (model.default_stage, model.default_version) == ("release", "latest")
    assert model.default_destination_dir == "./backend/artifacts/downloads"


def test_guide_extra_fields_block_loads_unchanged(tmp_path):
    task = load_text(tmp_path, GUIDE_EXTRA_FIELDS).task("classification")
    fields = {f.name: f for f in task.form_fields()}
    assert fields["task_name"].required and fields["task_name"].default == "classification"
    assert fields["profile"].widget == "select" and fields["profile"].choices == ["quick", "full"]
    assert fields["dry_run"].widget == "boolean" and fields["dry_run"].default is False
    assert "epochs" in fields  # the base fields stay
    argv = task.build_argv(task.resolve_values({"dry_run": "yes"}), python="py")
    assert argv[:3] == ["py", "-u", "/abs/path/to/your/train.py"]
    assert argv[-5:] == ["--task_name", "classification", "--profile", "quick", "--dry_run"]


def test_defaults_for_a_task_without_base(tmp_path):
    task = load_text(tmp_path, TASK).task("t")
    assert task.base_task_type is None and task.form_fields() == []
    assert task.title == "t" and task.description == "" and task.enabled
    assert (task.mlflow.metric, task.mlflow.mode, task.mlflow.model_name, task.mlflow.artifact_path) == (
        None, "max", "t-model", "model")
    assert task.runner.engine == "local" and task.runner.cwd is None


def test_optional_runner_keys(tmp_path):
    text = TASK + textwrap.indent(textwrap.dedent("""\
        engine: slurm
        env: {OMP_NUM_THREADS: "4"}
        cwd: work
        slurm: {partition: gpu, gres: "gpu:1", time: "01:00:00", cpus: 8, mem: 32G, extraArgs: [--exclusive]}
    """), "      ")
    runner = load_text(tmp_path, text).task("t").runner
    assert runner.engine == "slurm" and runner.env == {"OMP_NUM_THREADS": "4"}
    assert runner.cwd == tmp_path / "work"
    assert runner.slurm["cpus"] == 8 and runner.slurm["extra_args"] == ["--exclusive"]


# --- malformed catalogs: message fragment and exact line ---------------------

MALFORMED = [
    ("yaml-syntax", "tasks:\n  - taskType: a\n   bad: 1\n", 3, "invalid YAML"),
    ("yaml-unclosed", "tasks:\n  - taskType: a\n    runner: {startMethod: command\n  - x\n", 4,
     "invalid YAML"),
    ("unknown-top-key", TASK + "extra: 1\n", 6, "unknown key 'extra' (allowed: tasks, registryModels)"),
    ("unknown-task-key", TASK + "    colour: red\n", 6, "unknown key 'colour' (allowed: taskType"),
    ("unknown-runner-key", TASK + "      shell: bash\n", 6, "unknown key 'shell'"),
    ("enabled-string", TASK + "    enabled: maybe\n", 6, "expected true or false (got 'maybe')"),
    ("min-string", TASK + "    extraFields:\n      - name: n\n        valueType: int\n        min: low\n",
     9, "expected a number (got 'low')"),
    ("int-default-string", TASK + "    extraFields:\n      - name: n\n        valueType: int\n"
     "        default: '5'\n", 9, "default must be an integer for valueType int (got '5')"),
    ("select-default-not-in-choices", TASK + "    extraFields:\n      - name: p\n        type: select\n"
     "        choices: [a, b]\n        default: c\n", 10, "default 'c' is not one of the choices (a, b)"),
    ("select-without-choices", TASK + "    extraFields:\n      - name: p\n        type: select\n", 7,
     "type select needs a non-empty choices list"),
    ("missing-runner", "tasks:\n  - taskType: t\n    title: x\n", 2, "missing required key 'runner'"),
    ("missing-target", "tasks:\n  - taskType: t\n    runner:\n      startMethod: command\n", 3,
     "missing required key 'target'"),
    ("bad-start-method", "tasks:\n  - taskType: t\n    runner:\n      startMethod: bash\n      target: x\n",
     4, "expected one of python_script, python_module, command (got 'bash')"),
    ("module-target-is-a-path", "tasks:\n  - taskType: t\n    runner:\n      startMethod: python_module\n"
     "      target: a/b.py\n", 5, "expected a dotted module name"),
    ("duplicate-task-type", TASK + "  - taskType: t\n    runner: {startMethod: command, target: x}\n", 6,
     "duplicate taskType 't' (first at line 2)"),
    ("duplicate-yaml-key", TASK + "    title: a\n    title: b\n", 7, "duplicate key 'title' (first at line 6)"),
    ("field-order-unknown", CLASSIFICATION + "    fieldOrder: [epochs, epoch]\n", 4,
     "unknown field 'epoch' (known: epochs, batch_size"),
    ("hidden-fields-unknown", CLASSIFICATION + "    hiddenFields:\n      - seed\n      - colour\n", 6,
     "unknown field 'colour'"),
    ("field-overrides-unknown", CLASSIFICATION + "    fieldOverrides:\n      epochs: {max: 9}\n"
     "      epoks: {max: 9}\n", 6, "unknown field 'epoks'"),
    ("field-override-name", CLASSIFICATION + "    fieldOverrides:\n      epochs:\n        name: e\n", 6,
     "unknown key 'name'"),
    ("override-default-below-base-min", CLASSIFICATION + "    fieldOverrides:\n      epochs:\n"
     "        default: 0\n", 6, "default 0 is below min 1"),
    ("extra-field-clashes-with-base", CLASSIFICATION + "    extraFields:\n      - name: seed\n", 5,
     "'seed' is already a built-in classification field"),
    ("extra-fields-duplicate", TASK + "    extraFields:\n      - name: a\n      - name: a\n", 8,
     "duplicate extra field 'a'"),
    ("min-above-max", TASK + "    extraFields:\n      - name: n\n        valueType: float\n        min: 5\n"
     "        max: 1\n", 10, "max 1 is below min 5"),
    ("default-out-of-range", TASK + "    extraFields:\n      - name: n\n        valueType: int\n"
     "        max: 10\n        default: 11\n", 10, "default 11 is above max 10"),
    ("bad-mlflow-mode", TASK + "    mlflow:\n      mode: maximum\n", 7, "expected one of max, min"),
    ("tasks-not-a-list", "tasks: hello\n", 1, "expected a list (got 'hello')"),
    ("tasks-missing", "registryModels: []\n", 1, "missing required key 'tasks'"),
    ("top-level-list", "- a\n- b\n", 1, "expected a mapping with a 'tasks' list"),
    ("empty-file", "", 1, "the catalog is empty"),
    ("comments-only", "# nothing yet\n", 1, "the catalog is empty"),
    ("bool-value-type-with-select", TASK + "    extraFields:\n      - name: flag\n        valueType: bool\n"
     "        type: select\n        choices: [true, false]\n", 9, "valueType bool needs type boolean"),
    ("boolean-type-with-int", TASK + "    extraFields:\n      - name: flag\n        valueType: int\n"
     "        type: boolean\n", 9, "type boolean needs valueType bool"),
    ("registry-duplicate-id", TASK + "registryModels:\n  - {id: a, modelName: m}\n  - {id: a, modelName: n}\n",
     8, "duplicate id 'a' (first at line 7)"),
    ("registry-bad-stage", TASK + "registryModels:\n  - id: a\n    modelName: m\n    defaultStage: prod\n", 9,
     "expected one of dev, release (got 'prod')"),
    ("registry-missing-model-name", TASK + "registryModels:\n  - id: a\n", 7,
     "missing required key 'modelName'"),
    ("bad-task-type", "tasks:\n  - taskType: 'bad name'\n    runner: {startMethod: command, target: x}\n", 2,
     "expected a name matching"),
    ("bad-field-name", TASK + "    extraFields:\n      - name: 9lives\n", 7, "expected a name matching"),
    ("env-value-not-string", TASK + "      env: {A: 1}\n", 6, "expected a string (got 1)"),
    ("slurm-time-unquoted", TASK + "      slurm:\n        time: 1:00:00\n", 7, "quote the time"),
    ("hidden-required-without-default", TASK + "    extraFields:\n      - name: must\n        required: true\n"
     "    hiddenFields: [must]\n", 9, "required and has no default, so it cannot be hidden"),
    ("task-not-a-mapping", "tasks:\n  - just a string\n", 2, "expected a mapping (got 'just a string')"),
]


@pytest.mark.parametrize("text, line, fragment", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_catalog_reports_line_and_message(tmp_path, text, line, fragment):
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    assert fragment in error.message
    assert error.line == line, str(error)
    assert error.path == tmp_path / "catalog.yaml"


def test_error_keys_are_dotted_paths(tmp_path):
    (error,) = errors_of(tmp_path, TASK + "      startMethod2: x\n")
    assert error.key == "tasks[0].runner.startMethod2"
    assert str(error) == f"{tmp_path / 'catalog.yaml'}:6: tasks[0].runner.startMethod2: {error.message}"


def test_all_errors_in_one_file_are_reported_in_file_order(tmp_path):
    text = textwrap.dedent("""\
        tasks:
          - taskType: classification
            enabled: sometimes
            runner:
              startMethod: python_module
              target: pkg.train
            fieldOrder: [nope]
            extraFields:
              - name: p
                type: select
          - taskType: other
            runner:
              startMethod: teleport
              target: x
            hiddenFields: [ghost]
        colour: blue
        registryModels:
          - id: a
    """)
    errors = errors_of(tmp_path, text)
    assert [(e.line, e.key) for e in errors] == [
        (3, "tasks[0].enabled"),
        (7, "tasks[0].fieldOrder[0]"),
        (9, "tasks[0].extraFields[0].choices"),  # the field lacking them
        (13, "tasks[1].runner.startMethod"),
        (15, "tasks[1].hiddenFields[0]"),  # checked although the runner is broken
        (16, "colour"),
        (18, "registryModels[0].modelName"),
    ]
    assert "tasks[0].fieldOrder[0]" in str(CatalogErrors(errors)).splitlines()[1]


def test_missing_file(tmp_path):
    with pytest.raises(CatalogErrors) as caught:
        load_catalog(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: file not found; set TRAINING_CATALOG_PATH or create it"


def test_unknown_task_names_the_known_ones(tmp_path):
    text = TASK + "  - taskType: old\n    enabled: false\n    runner: {startMethod: command, target: x}\n"
    catalog = load_text(tmp_path, text)
    assert [t.task_type for t in catalog.enabled_tasks()] == ["t"]
    assert catalog.task("old").enabled is False  # disabled tasks are still found
    with pytest.raises(UnknownTask, match="unknown task 'x'; known: t, old"):
        catalog.task("x")


# --- form fields and values ---------------------------------------------------

FORM = CLASSIFICATION + textwrap.indent(textwrap.dedent("""\
    fieldOrder: [seed, flag]
    hiddenFields: [samples, image_size]
    fieldOverrides:
      epochs: {default: 3, max: 50, label: Passes}
      device: {default: cpu}
    extraFields:
      - name: flag
        valueType: bool
      - name: tag
        required: true
      - name: ratio
        valueType: float
        min: 0
        max: 1
"""), "    ")


@pytest.fixture
def form_task(tmp_path):
    return load_text(tmp_path, FORM).task("classification")


def test_form_fields_order_hidden_overrides_and_extras(form_task):
    names = [f.name for f in form_task.form_fields()]
    assert names == ["seed", "flag", "epochs", "batch_size", "learning_rate", "num_classes", "device",
                     "experiment_name", "output_dir", "tag", "ratio"]
    fields = {f.name: f for f in form_task.form_fields()}
    assert (fields["epochs"].default, fields["epochs"].max, fields["epochs"].label) == (3, 50, "Passes")
    assert fields["epochs"].min == 1  # untouched keys keep the built-in value
    assert fields["device"].default == "cpu" and fields["device"].choices == ["auto", "cpu", "cuda"]
    assert fields["flag"].widget == "boolean" and fields["tag"].widget == "text"
    assert fields["learning_rate"].value_type == "float" and fields["learning_rate"].help


def test_resolve_values_coerces_strings(form_task):
    values = form_task.resolve_values(
        {"epochs": "7", "learning_rate": "1e-2", "flag": "on", "tag": " exp1 ", "ratio": 1, "device": "cuda"})
    assert values["epochs"] == 7 and values["learning_rate"] == 0.01
    assert values["flag"] is True and values["tag"] == "exp1" and values["ratio"] == 1.0
    assert values["device"] == "cuda" and values["seed"] == 42
    assert "samples" not in values  # hidden fields are neither shown nor passed


@pytest.mark.parametrize("raw, message", [
    ({"epochs": "x"}, "epochs: must be an integer (got 'x')"),
    ({"epochs": "1.5"}, "epochs: must be an integer (got '1.5')"),
    ({"epochs": "-1"}, "epochs: must be >= 1 (got -1)"),
    ({"epochs": 51}, "epochs: must be <= 50 (got 51)"),
    ({"device": "tpu"}, "device: must be one of auto, cpu, cuda (got 'tpu')"),
    ({"flag": "maybe"}, "flag: must be true or false (got 'maybe')"),
    ({"ratio": "lots"}, "ratio: must be a number (got 'lots')"),
    ({"colour": "red"}, "colour: unknown field for task 'classification' (known: seed, flag, epochs"),
    ({"samples": "100"}, "samples: hidden for task 'classification'"),
])
def test_resolve_values_errors(form_task, raw, message):
    with pytest.raises(FieldValueErrors) as caught:
        form_task.resolve_values({"tag": "t", **raw})
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].message.startswith(message)


def test_resolve_values_reports_every_error_and_required(form_task):
    with pytest.raises(FieldValueErrors) as caught:
        form_task.resolve_values({"epochs": "x", "batch_size": "0"})
    assert str(caught.value).splitlines() == [
        "epochs: must be an integer (got 'x')",
        "batch_size: must be >= 1 (got 0)",
        "tag: a value is required",
    ]
    assert [e.field for e in caught.value.errors] == ["epochs", "batch_size", "tag"]


def test_field_coerce_empty_and_typed_values(form_task):
    fields = {f.name: f for f in form_task.form_fields()}
    assert fields["ratio"].coerce("") is None  # optional and empty: omitted
    assert fields["epochs"].coerce(5.0) == 5
    assert fields["flag"].coerce("OFF") is False
    error = pytest.raises(FieldValueError, fields["epochs"].coerce, True).value
    assert (error.field, str(error)) == ("epochs", "epochs: must be an integer (got true)")


# --- argv ------------------------------------------------------------------------


def runner_task(tmp_path, runner: str, fields: str = ""):
    text = f"tasks:\n  - taskType: job\n    runner: {runner}\n" + fields
    return load_text(tmp_path, text).task("job")


FLAG_FIELDS = """\
    extraFields:
      - {name: lr, valueType: float, default: 0.5}
      - {name: fast, valueType: bool, default: true}
      - {name: slow, valueType: bool, default: false}
      - {name: note}
"""


def test_build_argv_python_script_relative_to_catalog(tmp_path):
    task = runner_task(tmp_path, "{startMethod: python_script, target: scripts/train.py}", FLAG_FIELDS)
    argv = task.build_argv(task.resolve_values({}), python="/py", environ={})
    assert argv == ["/py", "-u", str(tmp_path / "scripts" / "train.py"), "--lr", "0.5", "--fast"]


def test_build_argv_python_module(tmp_path):
    task = runner_task(tmp_path, "{startMethod: python_module, target: pkg.train}", FLAG_FIELDS)
    argv = task.build_argv(task.resolve_values({"note": "hi there", "fast": "no"}), python="/py", environ={})
    assert argv == ["/py", "-u", "-m", "pkg.train", "--lr", "0.5", "--note", "hi there"]


def test_build_argv_command_string_and_list(tmp_path):
    task = runner_task(tmp_path, "{startMethod: command, target: \"bash -c 'echo a b'\"}", FLAG_FIELDS)
    assert task.build_argv({"slow": True}, environ={}) == ["bash", "-c", "echo a b", "--slow"]
    listed = runner_task(tmp_path, "{startMethod: command, target: [echo, 'a b']}")
    assert listed.build_argv({}, environ={}) == ["echo", "a b"]


def test_target_env_var_overrides(tmp_path):
    task = runner_task(tmp_path, "{startMethod: python_module, target: pkg.train, targetEnvVar: MY_TRAIN}")
    assert task.build_argv({}, python="py", environ={"MY_TRAIN": ""}) == ["py", "-u", "-m", "pkg.train"]
    assert task.build_argv({}, python="py", environ={"MY_TRAIN": "other.mod"}) == ["py", "-u", "-m", "other.mod"]
    assert task.build_argv({}, python="py", environ={"MY_TRAIN": "/abs/train.py"}) == ["py", "-u", "/abs/train.py"]
    # A relative override was typed in the user's shell: it is relative to the working directory.
    assert task.build_argv({}, python="py", environ={"MY_TRAIN": "mine/train.py"}) == [
        "py", "-u", str(Path.cwd() / "mine" / "train.py")]
    command = runner_task(tmp_path, "{startMethod: command, target: old, targetEnvVar: MY_CMD}")
    assert command.build_argv({}, environ={"MY_CMD": "new --x 1"}) == ["new", "--x", "1"]


def test_default_catalog_argv_and_env_override():
    task = load_catalog(PACKAGED_CATALOG).task("classification")
    argv = task.build_argv(task.resolve_values({"epochs": "2"}), python="py", environ={})
    assert argv[:4] == ["py", "-u", "-m", "vtm_tui.train.classification"]
    assert argv[argv.index("--epochs") + 1] == "2"
    overridden = task.build_argv({}, python="py", environ={"CLASSIFICATION_SCRIPT_PATH": "/x/train.py"})
    assert overridden == ["py", "-u", "/x/train.py"]


# --- YAML as YAML: anchors, aliases, merge keys -------------------------------

SHARED_SLURM = textwrap.dedent("""\
    tasks:
      - taskType: small
        runner:
          startMethod: command
          target: echo small
          engine: slurm
          slurm: &gpu_defaults {partition: gpu, gres: "gpu:1", time: "02:00:00", cpus: 8}
        extraFields: &common_fields
          - {name: lr, valueType: float, default: 0.01}
      - taskType: big
        runner:
          startMethod: command
          target: echo big
          engine: slurm
          slurm: {<<: *gpu_defaults, mem: 64G}
        extraFields: *common_fields
      - taskType: long
        runner:
          startMethod: command
          target: echo long
          engine: slurm
          slurm:
            <<: [{time: "48:00:00", mem: 8G}, *gpu_defaults]
            cpus: 2
""")


def test_anchors_aliases_and_merge_keys_resolve_as_yaml_safe_load(tmp_path):
    """The issue's input: `slurm: {<<: *gpu_defaults, mem: 64G}` was `unknown key '<<'`."""
    import yaml

    from vtm_tui.core.catalog.problems import Problems
    from vtm_tui.core.catalog.yaml_lines import compose

    problems = Problems(tmp_path / "catalog.yaml")
    assert compose(SHARED_SLURM, problems) == yaml.safe_load(SHARED_SLURM) and not problems.errors
    catalog = load_text(tmp_path, SHARED_SLURM)
    slurm = {t: {k: v for k, v in catalog.task(t).runner.slurm.items() if v is not None} for t in ("big", "long")}
    assert slurm["big"] == {"partition": "gpu", "gres": "gpu:1", "time": "02:00:00", "cpus": 8, "mem": "64G"}
    # the mapping's own keys win over merged ones; among merged mappings, PyYAML's order
    assert slurm["long"] == yaml.safe_load(SHARED_SLURM)["tasks"][2]["runner"]["slurm"] and slurm["long"]["cpus"] == 2
    assert [f.name for f in catalog.task("big").fields] == [f.name for f in catalog.task("small").fields]
    assert "lr" in [f.name for f in catalog.task("big").fields]


def test_errors_inside_merged_content_point_at_the_line_that_holds_them(tmp_path):
    import yaml

    text = SHARED_SLURM.replace("cpus: 8}", "cpus: eight}").replace("mem: 64G}", "mem: 64G, colour: red}")
    yaml.safe_load(text)  # valid YAML: the errors are the catalog's
    lines = text.splitlines()
    anchor = next(n for n, line in enumerate(lines, 1) if "&gpu_defaults" in line)
    merged = next(n for n, line in enumerate(lines, 1) if "<<: *gpu_defaults" in line)
    errors = errors_of(tmp_path, text)
    assert [(e.line, e.key) for e in errors] == [
        (anchor, "tasks[0].runner.slurm.cpus"),
        (anchor, "tasks[1].runner.slurm.cpus"),  # merged from the anchor: the anchor's line
        (merged, "tasks[1].runner.slurm.colour"),
    ], "\n".join(map(str, errors))
    assert "expected an integer" in errors[1].message or "int" in errors[1].message, errors[1]
    (error,) = errors_of(tmp_path, SHARED_SLURM.replace("<<: *gpu_defaults", "<<: gpu"))
    assert error.line == merged and "invalid YAML" in error.message and "for merging" in error.message, error
