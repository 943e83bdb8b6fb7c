"""The emulator is the other party: it imports nothing from the rest of seedance_prefect, and not Prefect."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import seedance_prefect.emulator as emulator_pkg

EMULATOR_DIR = Path(emulator_pkg.__file__).parent
PACKAGE_DIR = EMULATOR_DIR.parent
REPO_ROOT = PACKAGE_DIR.parent


def _run(code: str) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _is_ours(name: str) -> bool:
    return name == "seedance_prefect" or name.startswith("seedance_prefect.")


def _is_prefect(name: str) -> bool:
    return name == "prefect" or name.startswith("prefect.")


def test_emulator_alone_loads_no_other_package_module_and_no_prefect() -> None:
    # The parent package is replaced by a bare namespace so that only the emulator's own imports count.
    code = f"""
import json, pkgutil, sys, types, importlib
pkg = types.ModuleType("seedance_prefect"); pkg.__path__ = [{str(PACKAGE_DIR)!r}]
sys.modules["seedance_prefect"] = pkg
import seedance_prefect.emulator as emu
for info in pkgutil.walk_packages(emu.__path__, "seedance_prefect.emulator."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps({{"modules": sorted(sys.modules)}}))
"""
    modules = _run(code)["modules"]
    assert "seedance_prefect.emulator.app" in modules
    assert "seedance_prefect.emulator.cli" in modules
    leaked = [m for m in modules if _is_ours(m) and m != "seedance_prefect"]
    leaked = [m for m in leaked if not m.startswith("seedance_prefect.emulator")]
    assert leaked == []
    assert [m for m in modules if _is_prefect(m)] == []


def test_importing_the_emulator_adds_no_other_package_module() -> None:
    code = """
import json, sys
import seedance_prefect
before = set(sys.modules)
import seedance_prefect.emulator, seedance_prefect.emulator.cli
print(json.dumps({"new": sorted(set(sys.modules) - before)}))
"""
    new = _run(code)["new"]
    assert [m for m in new if _is_ours(m) and not m.startswith("seedance_prefect.emulator")] == []
    assert [m for m in new if _is_prefect(m)] == []


def test_emulator_source_has_no_forbidden_import() -> None:
    offenders = []
    for path in sorted(EMULATOR_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1 or (node.level == 1 and node.module is None and path.name == "__init__.py"):
                    offenders.append(f"{path.name}: relative import above the emulator")
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                if _is_prefect(name) or (_is_ours(name) and not name.startswith("seedance_prefect.emulator")):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
