"""``seedance_prefect.generation`` stays usable without Prefect: it imports neither Prefect nor the
Prefect layers (tasks, flows, batch, cli), only the client and the plain modules below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import seedance_prefect.generation as generation

#: What generation/ may import from the package (besides its own modules).
ALLOWED = {"client", "models", "errors", "limits", "settings", "_files", "state"}


def test_importing_generation_loads_no_prefect():
    code = (
        "import sys, seedance_prefect.generation\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_generation_imports_only_the_allowed_layers():
    folder = Path(generation.__file__).parent
    own = {p.stem for p in folder.glob("*.py")}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top not in ("prefect", "seedance_prefect"), f"{path.name}: import {alias.name}"
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith("prefect"), f"{path.name}: from {module} import ..."
                if node.level == 1:
                    assert module.split(".")[0] in own or not module, f"{path.name}: from .{module}"
                elif node.level == 2:  # from ..x import y, or from .. import x
                    used = [module.split(".")[0]] if module else [a.name for a in node.names]
                    assert set(used) <= ALLOWED, f"{path.name}: from ..{module} import {used}"
                else:
                    assert not module.startswith("seedance_prefect"), f"{path.name}: from {module}"
