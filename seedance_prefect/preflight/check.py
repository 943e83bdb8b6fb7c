"""Check a request completely before anything is sent (or paid): no network, no Prefect.

:func:`check_request` collects every problem of a request at once (unknown keys with a "did you
mean", each field error with the API's own message, counting rules, reference URIs, local files
probed by content against the media limits, prompt tags) into a :class:`PreflightReport`.
:func:`validate_request` raises :class:`~seedance_prefect.errors.InvalidRequest` instead, and
:func:`load_request_file` reads a JSON request file defensively. The rules live in
:mod:`seedance_prefect.rules`, reference handling in :mod:`seedance_prefect.preflight.references`
(on top of :mod:`seedance_prefect.references.source`, shared with reference preprocessing).

Example:
    >>> report = check_request({"prompt": "@Image1 waves", "input_images": ["https://example.com/a.png"],
    ...                         "duration": "3"})
    >>> report.ok, [(p.field, p.message, p.found, p.fix) for p in report.errors]
    (False, [('duration', 'Invalid duration', "'3'", 'Use a supported duration value')])
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import limits
from ..errors import FieldProblem, InvalidRequest
from ..media.probe import MediaInfo
from ..models import Endpoint, SeedanceRequest, unknown_parameters
from ..pricing import CostEstimate, estimate_cost
from ..references.fixes import FixOptions, PlannedFix
from ..rules import MODALITIES, count_rules, endpoint_rules, fmt_bytes, prompt_rules, tag_rules
from .fixes import apply_fix_plan, refuse_trims
from .references import ReferenceChecker, ReferenceInfo, ReferenceKind, media_problems

__all__ = [
    "MAX_REQUEST_FILE_BYTES",
    "PreflightReport",
    "ReferenceInfo",
    "check_request",
    "load_request_file",
    "validate_request",
]

#: Our choice: a request file is a few KB; anything over 10 MB is refused as hostile input.
MAX_REQUEST_FILE_BYTES = 10 * limits.MB

# The API's documented errors: pydantic error type -> (message, limit, fix).
_DOCUMENTED = {
    "missing": ("Field required", None, "Provide a text prompt"),
    "invalid_duration": ("Invalid duration", '"auto" or "4" through "15"', "Use a supported duration value"),
    "invalid_resolution": ("Invalid resolution", '"480p" or "720p"', 'Use "480p" or "720p"'),
    "invalid_num_generations": (
        "num_generations must be an integer between 1 and 4",
        "an integer 1-4",
        "Use 1–4",
    ),
}
_OTHER_FIXES: dict[str, tuple[str | None, str | None, str]] = {
    "invalid_aspect_ratio": (
        "Invalid aspect_ratio",
        "one of " + ", ".join(limits.ASPECT_RATIOS),
        "Use a supported aspect ratio",
    ),
    "invalid_response_format": ("Invalid response_format", '"url" or "b64_json"', 'Use "url" or "b64_json"'),
    "model_not_supported": (
        "Model not supported",
        limits.MODEL_ID,
        f'Use "{limits.MODEL_ID}" or leave model out',
    ),
    "invalid_seed": ("seed must be an integer", "an integer", "Use an integer seed, or leave seed out"),
    "extra_params_clash": (None, None, "Set known parameters directly, not in extra_params"),
    "list_type": (None, "a list of URI strings", 'Give a list, e.g. ["https://example.com/a.png"]'),
    "string_type": (None, "a string", "Give a string"),
    "bool_type": (None, "true or false", "Use true or false"),
    "bool_parsing": (None, "true or false", "Use true or false"),
    "dict_type": (None, "an object", "Give a JSON object"),
}


@dataclasses.dataclass
class PreflightReport:
    """Everything preflight found about a request.

    Attributes:
        request: The validated request (local paths made absolute); None when its fields are invalid.
        errors: Problems that refuse the request.
        warnings: Problems reported but not refusing it.
        references: Every reference, classified and (for local files and data: URIs) probed.
        cost: Estimated cost, when the request is valid enough to estimate.
        endpoint: ``"queue"`` or ``"sync"``.
        planned: Fixes reference preprocessing will make (``fix=True``): what, why, before -> after.
        resolved: The fixable problems those fixes take care of (no longer errors or warnings).

    Example:
        >>> report = check_request({"prompt": "A paper boat", "duration": "5"})
        >>> report.ok, str(report.cost)
        (True, '$2.00 (5 s at $0.40/s)')
    """

    request: SeedanceRequest | None
    errors: list[FieldProblem] = dataclasses.field(default_factory=list)
    warnings: list[FieldProblem] = dataclasses.field(default_factory=list)
    references: list[ReferenceInfo] = dataclasses.field(default_factory=list)
    cost: CostEstimate | None = None
    endpoint: Endpoint = "queue"
    planned: list[PlannedFix] = dataclasses.field(default_factory=list)
    resolved: list[FieldProblem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors and self.request is not None

    @property
    def fixable(self) -> list[FieldProblem]:
        """Problems that reference preprocessing can fix locally (resolved ones included)."""
        return [*self.resolved, *(p for p in (*self.errors, *self.warnings) if p.fixable)]

    def raise_for_errors(self) -> PreflightReport:
        """Raise :class:`~seedance_prefect.errors.InvalidRequest` with every error; return self if none.

        Example:
            >>> check_request({"prompt": ""}).raise_for_errors()
            Traceback (most recent call last):
            ...
            seedance_prefect.errors.InvalidRequest: 1 problem in the request:
              - prompt: Field required. Fix: Provide a text prompt
        """
        if self.errors or self.request is None:
            raise InvalidRequest(self.errors or [FieldProblem("request", "Invalid request")], self.warnings)
        return self

    def body(self) -> dict[str, Any] | None:
        """The body that would be sent, with local files and data: URIs shortened for printing.

        Returns:
            The body, or None when the request is invalid.

        Example:
            >>> check_request({"prompt": "hi", "input_images": ["data:image/png;base64,iVBORw0KGgo="]},
            ...               probe=False).body()["input_images"]
            ['data:image/png;base64,... (8 bytes)']
        """
        if self.request is None:
            return None
        try:
            body = self.request.to_body(self.endpoint)
        except ValueError:
            return None
        for ref in self.references:
            name, _, index = ref.field.partition("[")
            items = body.get(name)
            if isinstance(items, list) and ref.kind != "url":
                items[int(index.rstrip("]"))] = ref.display()
        return body

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (for ``seedance plan --json``)."""
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "body": self.body(),
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "references": [r.to_dict() for r in self.references],
            "cost": dataclasses.asdict(self.cost) if self.cost else None,
            "planned_fixes": [f.to_dict() for f in self.planned],
            "resolved": [p.to_dict() for p in self.resolved],
        }

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "REFUSED"
        lines = [f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        lines += [f"  error: {p}" for p in self.errors]
        lines += [f"  warning: {p}" for p in self.warnings]
        lines += [f"  planned fix: {f}" for f in self.planned]
        if self.cost:
            lines.append(f"  cost: {self.cost}")
        return "\n".join(lines)


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "request"


def _field_problems(exc: ValidationError) -> list[FieldProblem]:
    """Convert pydantic errors into FieldProblems, the API's message first."""
    problems = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        if kind == "invalid_references":  # the counting rules are checked on the raw lists instead
            continue
        field = _loc(err["loc"])
        found = None if kind == "missing" else _found(err.get("input"))
        if kind in _DOCUMENTED:
            message, limit, fix = _DOCUMENTED[kind]
            if kind == "missing" and field != "prompt":
                fix = f"Provide {field}"
        else:
            text, limit, fix = _OTHER_FIXES.get(kind, (None, None, None))
            message = text or err["msg"]
        problems.append(FieldProblem(field, message, limit=limit, found=found, fix=fix))
    return problems


def _field_order(problem: FieldProblem) -> int:
    """Sort key: unknown keys first, then the parameters in their documented order, then the rest."""
    name = problem.field.split("[")[0]
    fields = list(SeedanceRequest.model_fields)
    return fields.index(name) + 1 if name in fields else (len(fields) + 1 if name == "references" else 0)


def _references(
    checker: ReferenceChecker, raw: Mapping[str, Any], known: dict[str, Any]
) -> dict[str, list[tuple[str, MediaInfo | None, ReferenceKind | None]]]:
    """Check every reference; put the values to send (local paths made absolute) into ``known``."""
    media: dict[str, list[tuple[str, MediaInfo | None, ReferenceKind | None]]] = {n: [] for n in MODALITIES}
    for name in MODALITIES:
        items = raw.get(name)
        if not isinstance(items, (list, tuple)):
            continue
        sent = []
        for i, uri in enumerate(items):
            if isinstance(uri, str):
                value, info, kind = checker.reference(f"{name}[{i}]", uri)
                media[name].append((f"{name}[{i}]", info, kind))
                sent.append(value)
            else:
                sent.append(uri)  # pydantic reports the wrong type
        known[name] = sent
    return media


def check_request(
    data: Mapping[str, Any] | SeedanceRequest,
    *,
    endpoint: Endpoint = "queue",
    base_dir: str | os.PathLike[str] | None = None,
    probe: bool = True,
    fix: bool = True,
    options: FixOptions | None = None,
) -> PreflightReport:
    """Check a request completely, collecting every problem (never stopping at the first).

    With ``fix=True`` (the default) problems that reference preprocessing fixes are planned fixes
    (``report.planned``), not errors; see :mod:`seedance_prefect.preflight.fixes`.

    Args:
        data: The request body as a mapping (API keys) or a :class:`SeedanceRequest`.
        endpoint: ``"queue"`` or ``"sync"``; some rules depend on it.
        base_dir: Folder that relative local paths start from (default: the working directory).
        probe: Probe local files and data: URIs by content (False: only check that files exist).
        fix: Plan the fixes of reference preprocessing (False: report the media as they are, and
            refuse ``#t=`` in/out points).
        options: Options of the planned fixes.

    Returns:
        The report; ``report.ok`` tells whether the request may be sent.

    Raises:
        ValueError: ``endpoint`` is neither ``"queue"`` nor ``"sync"``.

    Example:
        >>> report = check_request({"prompt": "@Video2 dances", "resolution": "1080p", "colour": "red"})
        >>> [(p.field, p.message) for p in report.errors]  # doctest: +NORMALIZE_WHITESPACE
        [('colour', "Unknown parameter 'colour'"),
         ('prompt', '@Video2 refers to a video that is not attached'),
         ('resolution', 'Invalid resolution')]
    """
    if endpoint not in ("queue", "sync"):
        raise ValueError(f'endpoint must be "queue" or "sync", not {endpoint!r}')
    if isinstance(data, SeedanceRequest):
        raw: dict[str, Any] = data.model_dump()
    elif isinstance(data, Mapping):
        raw = dict(data)
    else:
        problem = FieldProblem(
            "request",
            "The request must be a JSON object",
            found=type(data).__name__,
            fix='Give an object such as {"prompt": "..."}',
        )
        return PreflightReport(None, errors=[problem], endpoint=endpoint)
    checker = ReferenceChecker(Path(base_dir).resolve() if base_dir else Path.cwd(), probe)
    for key, hint in unknown_parameters(raw):
        checker.add(
            [
                FieldProblem(
                    key,
                    f"Unknown parameter {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                    fix=f"Rename it to {hint!r}" if hint else "Remove it, or pass it in extra_params",
                )
            ]
        )
    known = {k: v for k, v in raw.items() if k in SeedanceRequest.model_fields}
    media = _references(checker, raw, known)
    request: SeedanceRequest | None = None
    try:
        request = SeedanceRequest.model_validate(known)
    except ValidationError as exc:
        checker.add(_field_problems(exc))
    counts = [len(raw[n]) if isinstance(raw.get(n), (list, tuple)) else 0 for n in MODALITIES]
    checker.add(count_rules(*counts))
    prompt = raw.get("prompt")
    if isinstance(prompt, str):
        checker.add(prompt_rules(prompt))
        checker.add(tag_rules(prompt, *counts))
    checker.add(endpoint_rules(endpoint, raw.get("num_generations", 1), raw.get("response_format")))
    media_problems(checker, media)
    planned: list[PlannedFix] = []
    resolved: list[FieldProblem] = []
    if fix and probe:
        planned, resolved = apply_fix_plan(checker, options)
    elif not fix:
        refuse_trims(checker)
    cost = estimate_cost(request.duration, request.num_generations) if request else None
    errors, warnings = sorted(checker.errors, key=_field_order), sorted(checker.warnings, key=_field_order)
    return PreflightReport(request, errors, warnings, checker.references, cost, endpoint, planned, resolved)


def validate_request(
    data: Mapping[str, Any] | SeedanceRequest,
    *,
    endpoint: Endpoint = "queue",
    base_dir: str | os.PathLike[str] | None = None,
    probe: bool = True,
    fix: bool = True,
) -> SeedanceRequest:
    """Check a request and return it, or raise with every problem found.

    With ``fix=True`` (the default) nothing that reference preprocessing fixes is refused: the
    ``prepare_references`` step that follows fixes it.

    Args:
        data: The request body as a mapping (API keys) or a :class:`SeedanceRequest`.
        endpoint: ``"queue"`` or ``"sync"``.
        base_dir: Folder that relative local paths start from (default: the working directory).
        probe: Probe local files and data: URIs by content.
        fix: Let fixable problems through as planned fixes (False: refuse them).

    Returns:
        The request, with local paths made absolute.

    Raises:
        InvalidRequest: With every error (and the warnings) of the request.

    Example:
        >>> validate_request({"prompt": "A paper boat", "duration": 8}).duration
        '8'
    """
    report = check_request(data, endpoint=endpoint, base_dir=base_dir, probe=probe, fix=fix)
    report.raise_for_errors()
    assert report.request is not None
    return report.request


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_request_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """Read a JSON request file (the API body keys) defensively.

    Args:
        path: The JSON file.

    Returns:
        ``(body, base_dir)``: the request as a dict and the file's folder, which relative local
        paths in it start from.

    Raises:
        InvalidRequest: One problem (field: the file's path) for a missing or unreadable file, a
            file over 10 MB, invalid UTF-8, invalid JSON (with line and column), duplicate keys,
            NaN/Infinity, or a top-level value that is not an object.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "req.json"
        >>> _ = p.write_text('{"prompt": "A paper boat"}')
        >>> body, base = load_request_file(p)
        >>> body, base == p.parent.resolve()
        ({'prompt': 'A paper boat'}, True)
    """
    p = Path(path)
    label = str(path)

    def fail(message: str, found: str | None = None, fix: str | None = None, limit: str | None = None) -> Any:
        raise InvalidRequest([FieldProblem(label, message, limit=limit, found=found, fix=fix)])

    try:
        if not p.exists():
            fail("Request file not found", fix="Check the path")
        if not p.is_file():
            fail("Not a regular file", fix="Give the path of a JSON file")
        size = p.stat().st_size
        too_big = f"at most {fmt_bytes(MAX_REQUEST_FILE_BYTES)}"
        if size > MAX_REQUEST_FILE_BYTES:
            fail(
                "Request file too large",
                limit=too_big,
                found=fmt_bytes(size),
                fix="A request is a few KB: give media as paths or URLs, not inline",
            )
        with p.open("rb") as fh:
            raw = fh.read(MAX_REQUEST_FILE_BYTES + 1)
    except OSError as exc:
        fail(
            "Cannot read the request file", found=exc.strerror or str(exc), fix="Check the file's permissions"
        )
    if len(raw) > MAX_REQUEST_FILE_BYTES:
        fail("Request file too large", limit=too_big, found=f"more than {fmt_bytes(MAX_REQUEST_FILE_BYTES)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        fail(
            "Request file is not valid UTF-8",
            found=f"byte 0x{raw[exc.start]:02x} at line {line}, column {column}",
            fix="Save the file as UTF-8",
        )
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        fail(
            "Invalid JSON",
            found=f"line {exc.lineno}, column {exc.colno}: {exc.msg}",
            fix="Fix the JSON syntax",
        )
    except _DuplicateKey as exc:
        fail("Duplicate key in the request file", found=repr(exc.args[0]), fix="Keep one value per key")
    except RecursionError:
        fail("JSON nested too deeply", fix="A request is a flat object")
    except ValueError as exc:
        fail("Invalid JSON", found=str(exc), fix="Use numbers, not NaN or Infinity")
    if not isinstance(data, dict):
        fail(
            "The request file must hold a JSON object",
            found=f"a JSON {type(data).__name__}",
            fix='Write an object such as {"prompt": "..."}',
        )
    return data, p.resolve().parent
