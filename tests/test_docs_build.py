"""The documentation site builds with warnings as errors: guides, and the API reference from the docstrings.

``mkdocs build --strict`` fails on any warning: a page missing from the nav, a broken link, or a
docstring mkdocstrings cannot render (an unknown cross-reference, a parameter documented under the
wrong name...). CI runs only pytest, so the build is a test.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
API_PAGES = [
    "seedance_prefect",
    "credentials",
    "jobs",
    "tasks",
    "flows",
    "batch_flows",
    "slots",
    "client",
    "preflight",
    "references",
    "models",
    "errors",
    "settings",
]


def test_every_api_page_is_in_the_nav() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.stem for p in (REPO / "docs" / "api").glob("*.md")}
    assert pages == {*API_PAGES, "index"}
    for page in pages:
        assert f"api/{page}.md" in config, page
    for guide in (REPO / "docs").glob("*.md"):
        assert f" {guide.name}" in config, f"{guide.name} is not in the nav of mkdocs.yml"
    assert yaml.safe_load(config)["strict"] is True


def test_the_griffe_extension_doctests() -> None:
    path = REPO / "docs" / "api" / "griffe_examples.py"
    spec = importlib.util.spec_from_file_location("griffe_examples", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    failed, attempted = doctest.testmod(module)
    assert attempted >= 1 and failed == 0


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"mkdocs build --strict failed (pip install '.[docs]'):\n{output[-6000:]}"
    assert "WARNING" not in output, output[-6000:]
    jobs = (site / "api" / "jobs" / "index.html").read_text(encoding="utf-8")
    assert "SeedanceJob" in jobs and "run_seedance_job" in jobs
    # doctests render as console blocks, not as Markdown quotes
    assert "language-pycon" in jobs or "highlight" in jobs
    for page in API_PAGES:
        assert (site / "api" / page / "index.html").is_file(), page
    assert (site / "architecture" / "index.html").is_file()
