"""Old import paths keep working for one release, with a DeprecationWarning that names the new path.

An old module path (``seedance_prefect._compat.MOVED_MODULES``) warns only when it is first imported
in a process; another test may have imported it already. So the old paths are imported in fresh
interpreters (``sys.executable``), where the warning is really observed. The old lazy names of
``seedance_prefect.media`` warn on every access and are checked in this process.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import seedance_prefect
from seedance_prefect._compat import MOVED_MODULES

PACKAGE_DIR = Path(seedance_prefect.__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
P = "seedance_prefect."

#: The old module paths kept for this release: remove one here when its deprecation period ends.
OLD_PATHS = {
    "_http",
    "events",
    "inline_video",
    "waiting",
    "preflight_rules",
    "preflight_refs",
    "preflight_fixes",
    "reference_source",
    "media.refs",
    "media.plan",
    "media.fixes",
    "media.preprocess",
    "media.hosting",
    "journal",
    "verify",
    "storage",
    "budget",
    "batch_runner",
    "runtime",
    "pipeline",
}

#: Names of seedance_prefect.media that moved to seedance_prefect.references.
MEDIA_MOVED_NAMES = ["prepare", "plan_fixes", "FixOptions"]

_IMPORT_EVERY_OLD_PATH = r"""
import importlib, json, sys, warnings

import seedance_prefect
from seedance_prefect._compat import MOVED_MODULES

P = "seedance_prefect."
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    new = {old: importlib.import_module(P + target) for old, target in MOVED_MODULES.items()}
report = {
    "new_path_warnings": [str(w.message) for w in caught if "moved to" in str(w.message)],
    "preloaded": sorted(P + old for old in MOVED_MODULES if P + old in sys.modules),
    "entries": {},
}
for old in MOVED_MODULES:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(P + old)
    report["entries"][old] = {
        "warnings": [[w.category.__name__, str(w.message)] for w in caught],
        "is_new": module is new[old],
        "sys_modules_is_new": sys.modules.get(P + old) is new[old],
        "new_name": new[old].__name__,
        "new_spec_name": new[old].__spec__.name,
    }
print(json.dumps(report))
"""


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, Any]:
    """Every old path imported once, in a fresh interpreter, after every new path."""
    done = _python("-c", _IMPORT_EVERY_OLD_PATH)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_old_paths_are_the_ones_kept_for_this_release() -> None:
    assert set(MOVED_MODULES) == OLD_PATHS


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_old_path_is_not_shadowed_by_a_file_and_new_path_is_real(old: str, new: str) -> None:
    # a real file at the old path would be found before the finder, and its module would not be the new one
    old_file = PACKAGE_DIR.joinpath(*old.split("."))
    assert not old_file.with_suffix(".py").exists() and not old_file.is_dir()
    new_file = PACKAGE_DIR.joinpath(*new.split("."))
    assert new_file.with_suffix(".py").is_file() or (new_file / "__init__.py").is_file()
    assert new not in MOVED_MODULES


def test_new_paths_import_without_the_old_ones(fresh_imports: dict[str, Any]) -> None:
    assert fresh_imports["new_path_warnings"] == []
    assert fresh_imports["preloaded"] == []


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_old_path_warns_and_is_the_new_module(fresh_imports: dict[str, Any], old: str, new: str) -> None:
    entry = fresh_imports["entries"][old]
    assert len(entry["warnings"]) == 1, entry["warnings"]
    category, message = entry["warnings"][0]
    assert category == "DeprecationWarning"
    assert message.startswith(f"{P}{old} moved to {P}{new};")
    assert entry["is_new"] is True
    assert entry["sys_modules_is_new"] is True
    assert entry["new_name"] == P + new


def test_old_path_import_leaves_the_new_modules_spec_alone(fresh_imports: dict[str, Any]) -> None:
    changed = {
        old: entry["new_spec_name"]
        for old, entry in fresh_imports["entries"].items()
        if entry["new_spec_name"] != entry["new_name"]
    }
    assert changed == {}


def test_old_path_warning_is_shown_with_default_filters() -> None:
    # The warning is attributed to the importing line: a script's `import` shows it without -W options.
    code = "\n".join(f"import {P}{old}" for old in sorted(MOVED_MODULES))
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr
    shown = re.findall(r"^<string>:(\d+): DeprecationWarning: (\S+) moved to (\S+?);", done.stderr, re.M)
    assert [(old, new) for _, old, new in shown] == [
        (P + old, P + MOVED_MODULES[old]) for old in sorted(MOVED_MODULES)
    ]


def test_old_path_is_an_error_under_w_error() -> None:
    old, new = "journal", MOVED_MODULES["journal"]
    done = _python("-W", "error::DeprecationWarning", "-c", f"import {P}{old}")
    assert done.returncode != 0
    assert f"DeprecationWarning: {P}{old} moved to {P}{new}" in done.stderr
    ok = _python("-W", "error::DeprecationWarning", "-c", f"import {P}{new}")
    assert ok.returncode == 0, ok.stderr


# ---------------------------------------------------------------------------------------------------
# Old lazy names of seedance_prefect.media


def _moved_to(message: str, name: str) -> object:
    match = re.fullmatch(
        rf"seedance_prefect\.media\.{name} moved to (seedance_prefect\.[\w.]+)\.{name}", message
    )
    assert match, message
    return getattr(importlib.import_module(match.group(1)), name)


@pytest.mark.parametrize("name", MEDIA_MOVED_NAMES)
def test_media_old_name_warns_and_is_the_references_one(name: str) -> None:
    import seedance_prefect.media as media
    import seedance_prefect.references as references

    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(media, name)
    assert len(caught) == 1
    assert value is getattr(references, name)
    assert _moved_to(str(caught[0].message), name) is value


def test_media_old_name_by_from_import() -> None:
    import seedance_prefect.references as references

    with pytest.warns(DeprecationWarning, match=r"seedance_prefect\.media\.prepare moved to"):
        from seedance_prefect.media import prepare
    assert prepare is references.prepare


def test_every_media_old_name_warns_and_resolves() -> None:
    import seedance_prefect.media as media
    import seedance_prefect.references as references

    moved = sorted(media._MOVED)
    assert set(MEDIA_MOVED_NAMES) <= set(moved)
    for name in moved:
        with pytest.warns(DeprecationWarning) as caught:
            value = getattr(media, name)
        assert value is getattr(references, name), name
        assert _moved_to(str(caught[0].message), name) is value
    assert not set(moved) & set(media.__all__)  # `from seedance_prefect.media import *` does not warn


def test_media_unknown_name_is_an_attribute_error() -> None:
    import seedance_prefect.media as media

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = media.no_such_name  # type: ignore[attr-defined]
