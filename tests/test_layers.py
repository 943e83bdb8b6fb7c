"""The package's layering, checked on the source: lower layers never import higher ones.

Every module of ``seedance_prefect`` is parsed with :mod:`ast`; every ``import`` and ``from ... import``
statement counts, at module level or inside a function, under ``if TYPE_CHECKING:`` too. Relative
imports are resolved. ``importlib.import_module("...")`` calls with a string (the lazy ``__getattr__``
hooks of the ``__init__`` modules) are not import statements and are therefore exempt, and so is
``seedance_prefect/__init__.py`` itself (it re-exports lazily).

Each module belongs to the unit named by its first component under ``seedance_prefect`` (a module
such as ``limits`` or a subpackage such as ``client``) and has that unit's rank (:data:`RANKS`). A
module may import modules of its own rank or lower. Prefect (``prefect`` and the ``prefect_*``
integrations) may be imported from rank 8 on only, except for the commented :data:`PREFECT_EXCEPTIONS`.
A module of a unit missing from :data:`RANKS` fails the test: new code is placed deliberately.

What the emulator may import (nothing of the package, not Prefect) is pinned by
``tests/emulator/test_emulator_isolation.py``; here the emulator only has a rank, so that no module
below the CLI starts to depend on the other party.
"""

from __future__ import annotations

import ast
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import seedance_prefect
from seedance_prefect._compat import MOVED_MODULES

PACKAGE = "seedance_prefect"
PACKAGE_DIR = Path(seedance_prefect.__file__).resolve().parent

#: The rank of every unit (first component of a module name under ``seedance_prefect``).
RANKS: dict[str, int] = {
    "_version": 0,
    "limits": 0,
    "errors": 0,
    "settings": 0,
    "_files": 0,
    "_compat": 0,
    "_blocks": 0,  # the one loader of saved Prefect blocks by "<slug>/<name>"; imports only errors
    "models": 1,
    "pricing": 1,
    # shared state with compare-and-swap (a folder, or S3 through boto3) under the journal and the
    # presigned-URL record; no Prefect (an s3-bucket block is loaded through _blocks, lazily)
    "state": 1,
    "client": 2,  # HTTP only, no Prefect
    "media": 2,  # codecs only
    "rules": 3,
    "references": 4,
    "preflight": 5,
    "generation": 6,
    "delivery": 6,
    "batch": 7,
    # the thin Prefect layer
    "credentials": 8,
    "progress": 8,
    "lifecycle": 8,  # the seedance.generation.* lifecycle events (emit_event), called by tasks and jobs
    "tasks": 8,
    "flows": 8,
    "batch_flows": 8,
    "slots": 8,  # the global concurrency limit: size, leases for a flow run, slots of dead holders
    "jobs": 8,  # the SeedanceJob block (JobBlock/JobRun) and its run_seedance_job flow
    "cli": 9,
    # The other party, started by ``seedance emulator`` / ``seedance demo`` (and by the tests): only the
    # CLI may import it. Its own imports are pinned by tests/emulator/test_emulator_isolation.py.
    "emulator": 9,
}

#: From this rank on, Prefect may be imported.
PREFECT_RANK = 8

#: Imports of Prefect below :data:`PREFECT_RANK` that are deliberate: (importer, imported) -> why.
#: Each must stay lazy (inside a function), so importing the module never imports Prefect.
PREFECT_EXCEPTIONS: dict[tuple[str, str], str] = {
    # load_block() is how delivery targets (--deliver-to s3-bucket/NAME) and reference hosting
    # (--hosting s3-bucket/NAME) load the user's saved storage block (Block.load); Prefect is imported
    # only when such a value is given, so `seedance plan` and the client stay free of Prefect.
    ("seedance_prefect._blocks", "prefect.blocks.core"): "loads a saved storage block by slug and name",
}


@dataclass(frozen=True)
class Import:
    """One imported module, as written in one module of the package."""

    importer: str  # dotted module name
    path: str  # file, relative to the package's parent folder
    line: int
    imported: str  # absolute dotted module name (a submodule when ``from pkg import submodule``)
    lazy: bool  # inside a function
    name: str | None = None  # ``from pkg import name`` where name is not a submodule


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of a source file under ``root`` (the package's parent), and if it is a package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package (dotted name -> file)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" not in path.parts:
            modules[module_name(path, package_dir.parent)[0]] = path
    return modules


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


class _Collector(ast.NodeVisitor):
    def __init__(self, importer: str, is_package: bool, path: str, modules: set[str]) -> None:
        self.importer, self.is_package, self.path, self.modules = importer, is_package, path, modules
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, node: ast.stmt, imported: str, name: str | None = None) -> None:
        self.found.append(Import(self.importer, self.path, node.lineno, imported, self.depth > 0, name))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = _absolute(node, self.importer, self.is_package)
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            # ``from pkg import submodule`` imports the submodule; ``from pkg import name`` the package
            if submodule in self.modules:
                self._add(node, submodule)
            else:
                self._add(node, module, alias.name)


def collect_imports(package_dir: Path) -> list[Import]:
    """Every import statement of every module of the package at ``package_dir``."""
    modules = package_modules(package_dir)
    found: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(package_dir.parent).as_posix()
        collector = _Collector(name, path.name == "__init__.py", relative, set(modules))
        collector.visit(tree)
        found.extend(collector.found)
    return found


def root_exports(package_dir: Path) -> dict[str, str]:
    """Names the package root re-exports -> the module that defines them (eagerly or via ``_LAZY``)."""
    tree = ast.parse((package_dir / "__init__.py").read_text(encoding="utf-8"))
    exports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                exports[alias.asname or alias.name] = f"{PACKAGE}.{node.module}"
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
            lazy = ast.literal_eval(node.value)  # type: ignore[attr-defined]
            exports.update({str(k): str(v) for k, v in lazy.items()})
    return exports


def unit(module: str) -> str | None:
    """The unit of a module of the package (``seedance_prefect.client._http`` -> ``client``)."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def is_ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def is_prefect(module: str) -> bool:
    top = module.split(".")[0]
    return top == "prefect" or top.startswith("prefect_")


def _moved(module: str) -> str | None:
    for old in MOVED_MODULES:
        full = f"{PACKAGE}.{old}"
        if module == full or module.startswith(full + "."):
            return full
    return None


def _reached(imp: Import, exports: dict[str, str]) -> tuple[str, int | None]:
    """What an import of the package really reaches, described, and its rank (None: not in the table)."""
    if imp.imported != PACKAGE:
        name = unit(imp.imported)
        return imp.imported, RANKS.get(name) if name is not None else None
    # through the package root: the module defining the name (eagerly or lazily re-exported)
    if imp.name is not None and imp.name in exports:
        defining = exports[imp.name]
        return f"{PACKAGE}.{imp.name} (from {defining})", RANKS.get(unit(defining) or "")
    # ``import seedance_prefect`` or an unknown name: as high as anything the root re-exports
    ranks = [RANKS.get(unit(m) or "", 0) for m in exports.values() if unit(m) is not None]
    return PACKAGE, max(ranks)


def violations(package_dir: Path) -> list[str]:
    """Every breach of the layering in the package at ``package_dir``, one clear sentence each."""
    problems: list[str] = []
    modules = package_modules(package_dir)
    for module, path in modules.items():
        name = unit(module)
        if module != PACKAGE and name not in RANKS:
            problems.append(
                f"{path.relative_to(package_dir.parent).as_posix()}: module {module} belongs to unit "
                f"{name!r}, which has no rank: add it to RANKS in tests/test_layers.py deliberately"
            )
    exports = root_exports(package_dir)
    for imp in collect_imports(package_dir):
        if imp.importer == PACKAGE:
            continue  # seedance_prefect/__init__.py re-exports lazily
        where = f"{imp.path}:{imp.line}"
        importer_rank = RANKS.get(unit(imp.importer) or "")
        if importer_rank is None:
            continue  # reported above
        if is_prefect(imp.imported) and importer_rank < PREFECT_RANK:
            allowed = PREFECT_EXCEPTIONS.get((imp.importer, imp.imported))
            if allowed is None:
                problems.append(
                    f"{where}: {imp.importer} (rank {importer_rank}) imports {imp.imported}: Prefect "
                    f"may be imported from rank {PREFECT_RANK} on only"
                )
            elif not imp.lazy:
                problems.append(
                    f"{where}: {imp.importer} (rank {importer_rank}) imports {imp.imported} at module "
                    f"level: the allowed exception ({allowed}) must stay inside a function"
                )
            continue
        if not is_ours(imp.imported):
            continue
        old = _moved(imp.imported)
        if old is not None:
            new = f"{PACKAGE}.{MOVED_MODULES[old[len(PACKAGE) + 1 :]]}"
            problems.append(f"{where}: {imp.importer} imports the deprecated path {old}: import {new}")
            continue
        imported, imported_rank = _reached(imp, exports)
        if imported_rank is None:
            problems.append(
                f"{where}: {imp.importer} (rank {importer_rank}) imports {imported}, whose unit "
                f"{unit(imp.imported)!r} has no rank in tests/test_layers.py"
            )
        elif imported_rank > importer_rank:
            problems.append(
                f"{where}: {imp.importer} (rank {importer_rank}) imports {imported} (rank "
                f"{imported_rank}): a lower layer must not import a higher one"
            )
    return problems


# ---------------------------------------------------------------------------------------------------
# The package as it is


def test_every_module_has_a_rank_and_no_module_imports_a_higher_layer() -> None:
    problems = violations(PACKAGE_DIR)
    assert problems == [], "Layering violations:\n" + "\n".join(problems)


def test_rank_table_names_only_existing_units() -> None:
    units = {unit(m) for m in package_modules(PACKAGE_DIR)} - {None}
    assert sorted(set(RANKS) - units) == [], "RANKS names units that no longer exist: remove them"


def test_prefect_exceptions_are_still_needed_and_lazy() -> None:
    # An exception that no longer matches an import is removed here, so it cannot hide a new one.
    lazy_imports = {(i.importer, i.imported) for i in collect_imports(PACKAGE_DIR) if i.lazy}
    assert sorted(set(PREFECT_EXCEPTIONS) - lazy_imports) == []


def test_no_module_below_the_prefect_layer_imports_prefect_except_the_listed_ones() -> None:
    below = [
        (i.importer, i.imported)
        for i in collect_imports(PACKAGE_DIR)
        if is_prefect(i.imported) and RANKS.get(unit(i.importer) or "", PREFECT_RANK) < PREFECT_RANK
    ]
    assert sorted(set(below)) == sorted(PREFECT_EXCEPTIONS)


# ---------------------------------------------------------------------------------------------------
# The checker itself fails on a bad package (scratch copies of the real one)


@dataclass
class Scratch:
    """A scratch copy of the package, and the problems it had before a test changed it."""

    path: Path
    before: list[str]

    def append(self, file: str, code: str) -> None:
        target = self.path / file
        target.write_text(target.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")

    def new_problems(self) -> list[str]:
        # only appended to, so the line numbers of problems already there do not change
        return [p for p in violations(self.path) if p not in self.before]


@functools.cache
def _problems_of_the_real_package() -> tuple[str, ...]:
    return tuple(violations(PACKAGE_DIR))  # the same text for a copy: paths are relative to the copy


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    copy = tmp_path / PACKAGE
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return Scratch(copy, list(_problems_of_the_real_package()))


@pytest.mark.parametrize(
    ("file", "code", "expected"),
    [
        pytest.param(
            "client/_http.py",
            "def _late() -> None:\n    from ..flows import reference_to_video",
            "seedance_prefect.client._http (rank 2) imports seedance_prefect.flows (rank 8)",
            id="upward-relative-inside-function",
        ),
        pytest.param(
            "rules.py",
            "import seedance_prefect.references.plan",
            "seedance_prefect.rules (rank 3) imports seedance_prefect.references.plan (rank 4)",
            id="upward-absolute",
        ),
        pytest.param(
            "media/probe.py",
            "from .. import batch",
            "seedance_prefect.media.probe (rank 2) imports seedance_prefect.batch (rank 7)",
            id="upward-from-parent-import-submodule",
        ),
        pytest.param(
            "preflight/check.py",
            "from seedance_prefect import OxenCredentials",
            "seedance_prefect.preflight.check (rank 5) imports seedance_prefect.OxenCredentials "
            "(from seedance_prefect.credentials) (rank 8)",
            id="through-the-package-root",
        ),
        pytest.param(
            "preflight/check.py",
            "def _late() -> None:\n    import prefect",
            "seedance_prefect.preflight.check (rank 5) imports prefect: Prefect may be imported from rank 8",
            id="prefect-below-rank-8",
        ),
        pytest.param(
            "_blocks.py",
            "from prefect.blocks.core import Block",
            "imports prefect.blocks.core at module level",
            id="allowed-prefect-import-made-eager",
        ),
        pytest.param(
            "client/completion.py",
            "from ..emulator import EmulatorConfig",
            "seedance_prefect.client.completion (rank 2) imports seedance_prefect.emulator (rank 9)",
            id="emulator-imported-below-cli",
        ),
        pytest.param(
            "rules.py",
            "from .journal import Journal",
            "rules imports the deprecated path seedance_prefect.journal: "
            "import seedance_prefect.generation.journal",
            id="deprecated-path",
        ),
    ],
)
def test_checker_reports_a_bad_import(scratch: Scratch, file: str, code: str, expected: str) -> None:
    scratch.append(file, code)
    problems = scratch.new_problems()
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert problems[0].startswith(f"seedance_prefect/{file}:")


def test_checker_reports_a_module_without_rank(scratch: Scratch) -> None:
    (scratch.path / "newthing.py").write_text('"""Placed nowhere."""\n', encoding="utf-8")
    scratch.append("tasks.py", "from . import newthing")
    problems = scratch.new_problems()
    assert len(problems) == 2, problems
    assert "module seedance_prefect.newthing belongs to unit 'newthing', which has no rank" in problems[0]
    assert "imports seedance_prefect.newthing, whose unit 'newthing' has no rank" in problems[1]


def test_checker_reports_a_new_subpackage_without_rank(scratch: Scratch) -> None:
    (scratch.path / "scheduling").mkdir()
    (scratch.path / "scheduling" / "__init__.py").write_text('"""Placed nowhere."""\n', encoding="utf-8")
    assert scratch.new_problems() == [
        "seedance_prefect/scheduling/__init__.py: module seedance_prefect.scheduling belongs to unit "
        "'scheduling', which has no rank: add it to RANKS in tests/test_layers.py deliberately"
    ]


def test_checker_allows_same_rank_and_downward_imports(scratch: Scratch) -> None:
    scratch.append("generation/journal.py", "from ..delivery import folder")
    scratch.append("cli/main.py", "from ..flows import reference_to_video")
    scratch.append("batch/runner.py", "def _late() -> None:\n    from ..models import Generation")
    scratch.append("rules.py", "from seedance_prefect import SeedanceRequest")  # root re-export of models
    scratch.append("credentials.py", "import prefect_aws")
    assert scratch.new_problems() == []
