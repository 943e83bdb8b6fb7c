"""The public surface users rely on: exported names, import paths and the stable names of the integration.

As in httpx's ``tests/test_exported_members.py``: every name of an ``__all__`` is an attribute, and the
package's ``__all__`` is complete. The expected values are written literally, so a rename or a removal
fails here first and is then made on purpose (with a deprecation, see ``seedance_prefect._compat``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import seedance_prefect

PACKAGE_DIR = Path(seedance_prefect.__file__).resolve().parent
PYPROJECT = PACKAGE_DIR.parent / "pyproject.toml"

ROOT_ALL = [
    "MODEL_ID",
    "ApiError",
    "AuthenticationError",
    "CompletionEvent",
    "DownloadError",
    "FieldProblem",
    "Generation",
    "GenerationCancelled",
    "GenerationFailed",
    "GenerationTimeout",
    "InvalidRequest",
    "NotFoundError",
    "RateLimitedError",
    "SeedanceConnectionError",
    "SeedanceError",
    "SeedanceRequest",
    "ServerError",
    "VerificationFailed",
    "VideoItem",
    "VideoResult",
    "__version__",
    "is_transient",
    # loaded on first use
    "SeedanceClient",
    "AsyncSeedanceClient",
    "OxenCredentials",
    "SeedanceJob",
]

#: Import paths and names users write, module -> names that must resolve there.
PUBLIC_NAMES: dict[str, list[str]] = {
    "seedance_prefect.client": ["SeedanceClient", "AsyncSeedanceClient", "sha256_file"],
    "seedance_prefect.credentials": ["OxenCredentials", "resolve_credentials"],
    "seedance_prefect.jobs": [
        "SeedanceJob",
        "SeedanceJobRun",
        "run_seedance_job",
        "trigger_seedance_job",
        "wait_for_seedance_job_run",
        "fetch_seedance_job_result",
        "cancel_job_generations",
    ],
    "seedance_prefect.flows": ["reference_to_video", "cancel_remote_generations"],
    "seedance_prefect.batch_flows": [
        "batch_reference_to_video",
        "DEFAULT_LIMIT_NAME",
        "ensure_concurrency_limit",
        "free_slots",
    ],
    "seedance_prefect.slots": [
        "DEFAULT_LIMIT_NAME",
        "LimitLeases",
        "ensure_concurrency_limit",
        "free_slots",
        "reclaim_slots",
    ],
    "seedance_prefect.tasks": [
        "validate_request",
        "prepare_references",
        "enqueue_generation",
        "wait_for_generation",
        "download_video",
        "generate_sync",
        "verify_video",
        "deliver_video",
        "retry_if_transient",
        "DownloadedVideo",
        "generate_row",
        "deliver_generation",
        "finish_generation",
        # async twins (prefect-aws naming: batch_submit / abatch_submit)
        "avalidate_request",
        "aprepare_references",
        "aenqueue_generation",
        "await_for_generation",
        "adownload_video",
        "agenerate_sync",
        "averify_video",
        "adeliver_video",
    ],
    "seedance_prefect.preflight": [
        "check_request",
        "validate_request",
        "load_request_file",
        "PreflightReport",
    ],
    "seedance_prefect.references": ["prepare", "plan_fixes", "FixOptions", "ReferenceInfo"],
    "seedance_prefect.errors": [
        "SeedanceError",
        "ApiError",
        "AuthenticationError",
        "BatchFailed",
        "BudgetExceeded",
        "DeliveryError",
        "DownloadError",
        "FieldProblem",
        "GenerationCancelled",
        "GenerationFailed",
        "GenerationTimeout",
        "HostingError",
        "InvalidRequest",
        "NotFoundError",
        "RateLimitedError",
        "SeedanceConnectionError",
        "ServerError",
        "StateConflict",
        "StateError",
        "VerificationFailed",
        "is_transient",
    ],
    "seedance_prefect.cli": ["main"],
}

#: ``__all__`` of the Prefect layer, exactly.
MODULE_ALL: dict[str, list[str]] = {
    "seedance_prefect.tasks": [
        "DownloadedVideo",
        "RowGenerations",
        "SlotHold",
        "adeliver_video",
        "adownload_video",
        "aenqueue_generation",
        "agenerate_sync",
        "aprepare_references",
        "avalidate_request",
        "averify_video",
        "await_for_generation",
        "deliver_generation",
        "deliver_video",
        "download_video",
        "enqueue_generation",
        "finish_generation",
        "generate_row",
        "generate_sync",
        "prepare_references",
        "retry_if_transient",
        "validate_request",
        "verify_video",
        "wait_for_generation",
    ],
    "seedance_prefect.flows": ["cancel_remote_generations", "reference_to_video"],
    "seedance_prefect.credentials": ["OxenCredentials", "resolve_credentials"],
    "seedance_prefect.jobs": [
        "SeedanceJob",
        "SeedanceJobRun",
        "cancel_job_generations",
        "fetch_seedance_job_result",
        "run_seedance_job",
        "trigger_seedance_job",
        "wait_for_seedance_job_run",
    ],
    "seedance_prefect.errors": sorted(PUBLIC_NAMES["seedance_prefect.errors"]),
}

#: Task names as Prefect shows and stores them (``@task(name=...)``): module, attribute -> name.
TASK_NAMES: dict[tuple[str, str], str] = {
    ("seedance_prefect.tasks", "validate_request"): "validate_request",
    ("seedance_prefect.tasks", "prepare_references"): "prepare_references",
    ("seedance_prefect.tasks", "enqueue_generation"): "enqueue_generation",
    ("seedance_prefect.tasks", "wait_for_generation"): "wait_for_generation",
    ("seedance_prefect.tasks", "download_video"): "download_video",
    ("seedance_prefect.tasks", "generate_sync"): "generate_sync",
    ("seedance_prefect.tasks", "verify_video"): "verify_video",
    ("seedance_prefect.tasks", "deliver_video"): "deliver_video",
    ("seedance_prefect.tasks", "generate_row"): "generate_row",
    ("seedance_prefect.tasks", "_deliver_generation"): "deliver_generation",  # run by deliver_generation()
    # the async twins keep their step's name: a step is named the same whichever flavour ran it
    ("seedance_prefect.tasks", "avalidate_request"): "validate_request",
    ("seedance_prefect.tasks", "aprepare_references"): "prepare_references",
    ("seedance_prefect.tasks", "aenqueue_generation"): "enqueue_generation",
    ("seedance_prefect.tasks", "await_for_generation"): "wait_for_generation",
    ("seedance_prefect.tasks", "adownload_video"): "download_video",
    ("seedance_prefect.tasks", "agenerate_sync"): "generate_sync",
    ("seedance_prefect.tasks", "averify_video"): "verify_video",
    ("seedance_prefect.tasks", "adeliver_video"): "deliver_video",
    ("seedance_prefect.batch_flows", "validate_manifest"): "validate_manifest",
    ("seedance_prefect.jobs", "trigger_seedance_job"): "trigger_seedance_job",
    ("seedance_prefect.jobs", "wait_for_seedance_job_run"): "wait_for_seedance_job_run",
    ("seedance_prefect.jobs", "fetch_seedance_job_result"): "fetch_seedance_job_result",
}

FLOW_NAMES: dict[tuple[str, str], str] = {
    ("seedance_prefect.flows", "reference_to_video"): "seedance-reference-to-video",
    ("seedance_prefect.batch_flows", "batch_reference_to_video"): "seedance-batch-reference-to-video",
    ("seedance_prefect.jobs", "run_seedance_job"): "seedance-run-job",
}

EVENT_NAMES = {
    "seedance.video.delivered",
    "seedance.batch.completed",
    "seedance.batch.failed",
    "seedance.generation.enqueued",
    "seedance.generation.succeeded",
    "seedance.generation.failed",
    "seedance.generation.cancelled",
}
EVENT_RESOURCE_PREFIXES = {"seedance.generation.", "seedance.batch."}

CLI_COMMANDS = ["plan", "generate", "batch", "emulator", "demo"]


def _get(module: str, name: str) -> object:
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------------------------------
# seedance_prefect


def test_package_all_is_pinned() -> None:
    assert seedance_prefect.__all__ == ROOT_ALL


def test_package_all_has_no_duplicates_and_every_name_resolves() -> None:
    assert len(set(seedance_prefect.__all__)) == len(seedance_prefect.__all__)
    for name in seedance_prefect.__all__:
        assert getattr(seedance_prefect, name) is not None, name
    assert set(seedance_prefect.__all__) <= set(dir(seedance_prefect))


def test_package_all_is_complete() -> None:
    # every public name the package defines (other than its submodules and typing helpers) is exported
    helpers = {"Any", "annotations", "importlib"}
    public = {
        name
        for name, value in vars(seedance_prefect).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name not in helpers
    }
    assert sorted(public - set(seedance_prefect.__all__)) == []


def test_package_lazy_names_are_the_ones_of_their_modules() -> None:
    from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient
    from seedance_prefect.credentials import OxenCredentials
    from seedance_prefect.jobs import SeedanceJob

    assert seedance_prefect.SeedanceClient is SeedanceClient
    assert seedance_prefect.AsyncSeedanceClient is AsyncSeedanceClient
    assert seedance_prefect.OxenCredentials is OxenCredentials
    assert seedance_prefect.SeedanceJob is SeedanceJob


def test_unknown_package_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = seedance_prefect.NoSuchThing  # type: ignore[attr-defined]


def test_model_id() -> None:
    assert seedance_prefect.MODEL_ID == "bytedance-seedance-2-0-reference-to-video"


# ---------------------------------------------------------------------------------------------------
# Import paths


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in PUBLIC_NAMES.items() for name in names],
    ids=lambda value: value,
)
def test_public_name_resolves(module: str, name: str) -> None:
    assert _get(module, name) is not None


@pytest.mark.parametrize("module", sorted(MODULE_ALL))
def test_module_all_is_pinned(module: str) -> None:
    assert importlib.import_module(module).__all__ == MODULE_ALL[module]


@pytest.mark.parametrize(
    "module",
    [
        "seedance_prefect.batch",
        "seedance_prefect.batch_flows",
        "seedance_prefect.slots",
        "seedance_prefect.cli",
        "seedance_prefect.client",
        "seedance_prefect.credentials",
        "seedance_prefect.delivery",
        "seedance_prefect.errors",
        "seedance_prefect.flows",
        "seedance_prefect.generation",
        "seedance_prefect.jobs",
        "seedance_prefect.media",
        "seedance_prefect.preflight",
        "seedance_prefect.progress",
        "seedance_prefect.references",
        "seedance_prefect.tasks",
    ],
)
def test_every_name_of_a_module_all_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    assert len(set(mod.__all__)) == len(mod.__all__), "duplicates in __all__"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []


def test_the_new_error_classes_are_seedance_errors() -> None:
    from seedance_prefect import errors

    for name in ("HostingError", "DeliveryError", "BudgetExceeded", "BatchFailed"):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SeedanceError), name


def test_batch_flows_reexports_batch_failed_from_errors() -> None:
    from seedance_prefect.batch_flows import BatchFailed
    from seedance_prefect.errors import BatchFailed as InErrors

    assert BatchFailed is InErrors


# ---------------------------------------------------------------------------------------------------
# Names stored by Prefect or typed by users


@pytest.mark.parametrize(("where", "expected"), sorted(TASK_NAMES.items()), ids=lambda value: str(value))
def test_task_name(where: tuple[str, str], expected: str) -> None:
    from prefect import Task

    task = _get(*where)
    assert isinstance(task, Task)
    assert task.name == expected


def test_every_task_of_the_prefect_layer_is_pinned() -> None:
    from prefect import Task

    found = set()
    for module in ("seedance_prefect.tasks", "seedance_prefect.batch_flows", "seedance_prefect.jobs"):
        mod = importlib.import_module(module)
        found |= {(module, name) for name, value in vars(mod).items() if isinstance(value, Task)}
    # tasks imported from another module are counted where they are defined
    found = {(m, n) for m, n in found if _get(m, n).fn.__module__ == m}  # type: ignore[attr-defined]
    assert sorted(found) == sorted(TASK_NAMES)


@pytest.mark.parametrize(("where", "expected"), sorted(FLOW_NAMES.items()), ids=lambda value: str(value))
def test_flow_name(where: tuple[str, str], expected: str) -> None:
    from prefect import Flow

    flow = _get(*where)
    assert isinstance(flow, Flow)
    assert flow.name == expected


def test_concurrency_limit_name() -> None:
    from seedance_prefect.batch_flows import DEFAULT_LIMIT_NAME, batch_reference_to_video

    assert DEFAULT_LIMIT_NAME == "seedance-generations"
    parameters = inspect.signature(batch_reference_to_video.fn).parameters
    assert parameters["limit_name"].default == "seedance-generations"


def test_credentials_block_type() -> None:
    from seedance_prefect.credentials import OxenCredentials

    assert OxenCredentials.get_block_type_slug() == "oxen-credentials"
    assert OxenCredentials.get_block_type_name() == "Oxen Credentials"


def test_job_block_type() -> None:
    from seedance_prefect.jobs import SeedanceJob

    assert SeedanceJob.get_block_type_slug() == "seedance-job"
    assert SeedanceJob.get_block_type_name() == "Seedance Job"


def test_pyproject_entry_points() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    assert project["name"] == "seedance-prefect"
    collections = project["entry-points"]["prefect.collections"]
    assert collections == {"seedance_prefect": "seedance_prefect.jobs"}
    assert project["scripts"] == {"seedance": "seedance_prefect.cli:main"}
    # both targets import, and the collection module holds both blocks (Prefect imports it to register them)
    collection = importlib.import_module(collections["seedance_prefect"])
    assert collection.OxenCredentials is _get("seedance_prefect.credentials", "OxenCredentials")
    assert collection.SeedanceJob is _get("seedance_prefect", "SeedanceJob")
    assert callable(_get("seedance_prefect.cli", "main"))


def _emit_event_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "emit_event":
                    calls.append((path.relative_to(PACKAGE_DIR).as_posix(), node))
    return calls


def test_event_names() -> None:
    events: set[str] = set()
    prefixes: set[str] = set()
    calls = _emit_event_calls()
    assert calls, "no emit_event( call found"
    for where, call in calls:
        event = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "event")
        names = [n.value for n in ast.walk(event) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert names, f"{where}:{call.lineno}: the event name must be written literally"
        events.update(names)
        for keyword in call.keywords:
            if keyword.arg == "resource" and isinstance(keyword.value, ast.Dict):
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "prefect.resource.id":
                        first = value.values[0] if isinstance(value, ast.JoinedStr) else value
                        assert isinstance(first, ast.Constant), f"{where}:{call.lineno}"
                        prefixes.add(str(first.value))
    assert events == EVENT_NAMES
    assert prefixes == EVENT_RESOURCE_PREFIXES


def test_cli_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    from seedance_prefect.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    section = usage.split("positional arguments:", 1)[1].split("\n\n", 1)[0]
    commands = re.findall(r"^ {4}(\S+)", section, flags=re.MULTILINE)
    assert commands == CLI_COMMANDS


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_cli_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from seedance_prefect.cli import main

    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "usage:" in capsys.readouterr().out
