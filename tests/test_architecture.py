"""The floor plan, checked: no import cycle anywhere in vtm_tui, light imports where start-up
speed matters, small modules with names that say what they hold, and every VTM_* variable read
through Settings. The layer contracts themselves are import-linter's (pyproject.toml), run by
.ci/run before the tests."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vtm_tui"
HEAVY = ("mlflow", "torch", "tensorboard")
MAX_LINES = 400
COHESIVE = "one cohesive class"  # what a longer module's docstring must say of itself


# ---------------------------------------------------------------------------
# Import cycles
# ---------------------------------------------------------------------------


def _strongly_connected(nodes, edges) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of more than one node that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges(child))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def import_cycles(package: str) -> list[list[str]]:
    """Every import cycle in `package`: between modules (an import inside a function counts, as
    it does for grimp), and between sibling packages (a.x imports b.y while b.z imports a.w)."""
    graph = grimp.build_graph(package)
    modules = sorted(graph.modules)

    def module_edges(module: str) -> list[str]:
        return sorted(m for m in graph.find_modules_directly_imported_by(module) if m in graph.modules)

    cycles = _strongly_connected(modules, module_edges)
    for parent in (m for m in modules if graph.find_children(m)):
        siblings = sorted(graph.find_children(parent))

        def package_edges(sibling: str, siblings=siblings) -> list[str]:
            reached = set()
            for source in (sibling, *graph.find_descendants(sibling)):
                for target in graph.find_modules_directly_imported_by(source):
                    for other in siblings:
                        if other != sibling and (target == other or target.startswith(other + ".")):
                            reached.add(other)
            return sorted(reached)

        cycles += [group for group in _strongly_connected(siblings, package_edges) if group not in cycles]
    return cycles


def test_vtm_tui_has_no_import_cycle():
    assert import_cycles("vtm_tui") == []


def _write_package(root: Path, name: str, files: dict[str, str]) -> None:
    """A throwaway package: {relative file path: code}."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for relative, code in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "from cyclepkg import b\n", "b.py": "def f():\n    from cyclepkg import a\n"},
     [["cyclepkg.a", "cyclepkg.b"]]),
    ({"x/__init__.py": "", "x/one.py": "from cyclepkg.y import two\n",
      "y/__init__.py": "", "y/two.py": "", "y/three.py": "from cyclepkg.x import one\n"},
     [["cyclepkg.x", "cyclepkg.y"]]),
    ({"a.py": "from cyclepkg import b\n", "b.py": "import json\n"}, []),
])
def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch, files, expected):
    _write_package(tmp_path, "cyclepkg", files)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclepkg") == expected


# ---------------------------------------------------------------------------
# Import hygiene: what start-up paths may pull in
# ---------------------------------------------------------------------------

_REPORT = "import sys\nprint('LOADED=' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & set(FORBIDDEN))))\n"

_HELP = """
from vtm_tui import cli
parser = cli.build_parser()
for argv in (['--help'], *([name, '--help'] for name in parser._subparsers._group_actions[0].choices)):
    try:
        cli.main(argv)
    except SystemExit:
        pass
"""

_FIRST_FRAME = """
import asyncio
from vtm_tui.settings import Settings
from vtm_tui.ui.app import VtmApp

async def main():
    app = VtmApp(Settings.load())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        print('FIRST=' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & set(FORBIDDEN))))
        for _ in range(50):  # and once the catalog and the runs are in
            if app.query_one('#task-list').option_count:
                break
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        print('TASKS=' + str(app.query_one('#task-list').option_count))

asyncio.run(main())
"""


def _core_modules() -> list[str]:
    return sorted(".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for path in (PACKAGE / "core").rglob("*.py"))


def loaded_after(code: str, forbidden: tuple[str, ...], cwd: Path, env: dict | None = None,
                 extra_path: Path | None = None) -> tuple[set[str], str]:
    """Run code in a fresh interpreter; (the forbidden top-level packages it imported, stdout)."""
    prefix = f"import sys\nFORBIDDEN = {forbidden!r}\n"
    if extra_path is not None:
        prefix += f"sys.path.insert(0, {str(extra_path)!r})\n"
    result = subprocess.run([sys.executable, "-c", prefix + code + "\n" + _REPORT], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("LOADED="))
    return {name for name in line.removeprefix("LOADED=").split(",") if name}, result.stdout


@pytest.mark.parametrize("module", _core_modules())
def test_core_module_imports_nothing_heavy(module):
    loaded, _ = loaded_after(f"import {module}", ("textual", "aioftp", *HEAVY), REPO)
    assert not loaded, f"importing {module} loads {sorted(loaded)}: import them inside the functions that need them"


@pytest.mark.parametrize("what, code", [
    ("vtm --help and every command's --help", _HELP),
    ("the training helper", "import vtm_tui.train\nfrom vtm_tui.train import TrainingLogger\n"),
    ("python -m vtm_tui.tb_import", "import vtm_tui.tb_import\nimport vtm_tui.commands.tensorboard\n"),
])
def test_start_up_paths_import_nothing_heavy(what, code):
    forbidden = HEAVY if what == "the training helper" else ("textual", *HEAVY)
    loaded, out = loaded_after(code, forbidden + (("aioftp",) if what.startswith("vtm --help") else ()), REPO)
    assert not loaded, f"{what} loads {sorted(loaded)}"
    if what.startswith("vtm --help"):
        assert "usage: vtm" in out and "publish-best" in out


def test_first_tui_frame_imports_nothing_heavy(offline_env):
    loaded, out = loaded_after(_FIRST_FRAME, HEAVY, offline_env.cwd, offline_env.env)
    assert "FIRST=\n" in out, out
    assert not loaded and int(out.split("TASKS=")[1].split()[0]) > 0, out


def test_the_hygiene_check_sees_a_heavy_import(tmp_path):
    _write_package(tmp_path, "probepkg", {"light.py": "import json\n", "heavy.py": "import fakeheavy\n"})
    (tmp_path / "fakeheavy.py").write_text("")
    assert loaded_after("import probepkg.light", ("fakeheavy",), tmp_path, extra_path=tmp_path)[0] == set()
    assert loaded_after("import probepkg.heavy", ("fakeheavy",), tmp_path, extra_path=tmp_path)[0] == {"fakeheavy"}


# ---------------------------------------------------------------------------
# Module size and names; where VTM_* variables are read
# ---------------------------------------------------------------------------


def _source_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_modules_stay_small():
    too_long = []
    for path in _source_modules():
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and COHESIVE not in docstring.lower():
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert not too_long, f"modules over {MAX_LINES} lines (split them, or say '{COHESIVE}' in the docstring)"


def test_no_two_modules_share_a_name_at_different_depths():
    depths = defaultdict(set)
    for path in _source_modules():
        if path.name != "__init__.py":
            depths[path.stem].add(str(path.parent.relative_to(REPO)))
    clashes = {name: sorted(where) for name, where in depths.items()
               if len({len(Path(folder).parts) for folder in where}) > 1}
    assert not clashes


# Reads: env.get("VTM_X"), getenv("VTM_X"), env["VTM_X"] (not assigned to), "VTM_X" in env.
_VTM_READ = re.compile(r"""(\.get|getenv)\(\s*["']VTM_|\[\s*["']VTM_[A-Z0-9_]+["']\s*\](?!\s*=[^=])|"""
                       r"""["']VTM_[A-Z0-9_]+["']\s+(not\s+)?in\b""")


def test_vtm_variables_are_read_only_through_settings():
    """Outside settings.py, code may hand VTM_* values to children (env["VTM_RUN_ID"] = ...),
    never read them: every read goes through Settings, which types, validates and documents it."""
    allowed = {PACKAGE / "settings.py"}
    readers = []
    for path in _source_modules():
        if path in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _VTM_READ.search(line):
                readers.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not readers, "\n".join(readers)


# ---------------------------------------------------------------------------
# Docstrings: every public function and class of core says what it takes and gives
# ---------------------------------------------------------------------------


def _abstract_methods(trees: dict[Path, ast.Module]) -> dict[str, set[str]]:
    """Class name -> its @abstractmethod methods that have a docstring, across the trees."""
    found: dict[str, set[str]] = defaultdict(set)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(item)
                            and any(ast.unparse(d).endswith("abstractmethod") for d in item.decorator_list)):
                        found[node.name].add(item.name)
    return found


def undocumented(root: Path) -> list[str]:
    """`path:line: name` of every public module-level function or class under root without a
    docstring, and of every public method of a public class (dunders, and overrides of a
    documented abstract method of a base class, excepted)."""
    trees = {path: ast.parse(path.read_text()) for path in sorted(root.rglob("*.py"))}
    abstract = _abstract_methods(trees)
    missing = []
    for path, tree in trees.items():
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            if not ast.get_docstring(node):
                missing.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.name}")
            if not isinstance(node, ast.ClassDef):
                continue
            inherited = set().union(*(abstract.get(ast.unparse(base).split(".")[-1], set()) for base in node.bases))
            for item in node.body:
                if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_")
                        and item.name not in inherited and not ast.get_docstring(item)):
                    missing.append(f"{path.relative_to(root.parent)}:{item.lineno}: {node.name}.{item.name}")
    return missing


def test_core_says_what_its_public_functions_and_classes_do():
    missing = undocumented(PACKAGE / "core")
    assert not missing, "public without a docstring (shapes, units, errors, sources):\n" + "\n".join(missing)


def test_the_docstring_check_sees_what_is_missing(tmp_path):
    _write_package(tmp_path, "docpkg", {"base.py": '''
        from abc import ABC, abstractmethod
        class Store(ABC):
            """A store."""
            @abstractmethod
            def get(self, key):
                """The value of key."""
        ''', "impl.py": '''
        from docpkg.base import Store
        def helper():
            pass
        def _private():
            pass
        class Memory(Store):
            """In memory."""
            def get(self, key):
                return key
            def put(self, key):
                pass
            def __len__(self):
                return 0
        '''})
    assert undocumented(tmp_path / "docpkg") == ["docpkg/impl.py:3: helper", "docpkg/impl.py:11: Memory.put"]
