"""Batch manifests: read them (JSONL or CSV, local or any fsspec URL) and check every row up front.

A manifest holds one request per row, with the API body keys plus an optional ``name``:

- **JSONL** (``.jsonl``, ``.ndjson``, ``.json``): one JSON object per line; blank lines and lines
  starting with ``#`` are skipped.
- **CSV** (``.csv``): a header row of keys; list fields (``input_images``, ``input_videos``,
  ``input_audios``) are ``|``-separated; empty cells are left out; ``seed`` and
  ``num_generations`` are read as integers, ``generate_audio`` as a boolean (``true``/``false``,
  ``yes``/``no``, ``1``/``0``); ``extra_params`` as a JSON object.

:func:`plan_batch` checks every row with the preflight (no network) and never stops at the first
bad row: the bad ones come back as :class:`RejectedRow` (line number, name, every problem), the
good ones as :class:`BatchRow`, each with its name, journal fingerprint and estimated cost. Two rows
may not share a name (their files would clash); identical unnamed rows are one request twice, so
the second is rejected (name them to make both).

Example:
    >>> rows = parse_manifest('{"prompt": "A boat", "duration": "5", "name": "boat"}\\n'
    ...                       '{"prompt": "A cat", "duration": "3"}\\n', "jsonl")
    >>> plan = plan_batch(rows)
    >>> [(r.line, r.name) for r in plan.rows], [(r.line, r.problems[0][:26]) for r in plan.rejected]
    ([(1, 'boat')], [(2, 'duration: Invalid duration')])
    >>> plan.cost_usd
    2.0
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..delivery.folder import default_name, safe_name
from ..errors import FieldProblem, InvalidRequest
from ..generation.journal import Journal
from ..models import SeedanceRequest
from ..preflight.check import check_request
from ..pricing import CostEstimate, estimate_cost
from .sources import classify_reference, fetch_reference, is_remote_manifest, local_reference_problem

__all__ = [
    "MAX_MANIFEST_BYTES",
    "BatchPlan",
    "BatchRow",
    "ManifestRow",
    "RejectedRow",
    "already_delivered",
    "parse_manifest",
    "plan_batch",
    "read_manifest",
]

#: Our choice: a manifest of 100,000 requests is a few tens of MB; more is refused.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
ManifestFormat = Literal["jsonl", "csv"]
_LIST_FIELDS = ("input_images", "input_videos", "input_audios")
_INT_FIELDS = ("seed", "num_generations")
_BOOL_FIELDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass
class ManifestRow:
    """One row as read from a manifest, before any check.

    Attributes:
        line: 1-based line number in the manifest (the first line of a CSV record).
        name: The row's ``name``, if it gave one.
        data: The request keys of the row.
        problems: Problems found while reading it (bad JSON, not an object...).
        remote: References to fetch before the checks, by field (``"input_images[0]"``): the
            absolute URLs of paths relative to a manifest read from a URL (:mod:`.sources`).
        refused: It names a reference its manifest may not name (a local file in a manifest read
            from a URL): rejected without the preflight, which would read that file.
    """

    line: int
    name: str | None
    data: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    remote: dict[str, str] = field(default_factory=dict)
    refused: bool = False


@dataclass(frozen=True)
class BatchRow:
    """A valid row, ready to run.

    Attributes:
        line: Line number in the manifest.
        name: Base name of its delivered files (given, or made from the prompt and fingerprint).
        request: The validated request (local paths made absolute).
        run_key: The journal key of the row (batch run key plus the row's own name).
        fingerprint: The row's journal fingerprint: equal fingerprints reattach, never pay twice.
        cost: Its estimated cost.
        warnings: Preflight warnings (sent anyway).
    """

    line: int
    name: str
    request: SeedanceRequest
    run_key: str | None
    fingerprint: str
    cost: CostEstimate
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RejectedRow:
    """A row that will not run, and why.

    Attributes:
        line: Line number in the manifest.
        name: The row's name, if it gave one.
        problems: One sentence per problem.
    """

    line: int
    name: str | None
    problems: tuple[str, ...]

    def __str__(self) -> str:
        label = f"line {self.line}" + (f" ({self.name})" if self.name else "")
        return f"{label}: " + "; ".join(self.problems)


@dataclass
class BatchPlan:
    """The checked manifest.

    Attributes:
        rows: Valid rows, in manifest order.
        rejected: Rows refused, in manifest order.
    """

    rows: list[BatchRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def cost_usd(self) -> float:
        """Estimated cost of every valid row."""
        return round(sum(r.cost.usd for r in self.rows), 2)


def _coerce_csv(key: str, value: str) -> Any:
    text = value.strip()
    if key in _LIST_FIELDS:
        return [part.strip() for part in text.split("|") if part.strip()]
    if key in _INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            return text  # the preflight names the field and the value
    if key == "generate_audio":
        return _BOOL_FIELDS.get(text.lower(), text)
    if key == "extra_params" and text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _split_name(line: int, data: dict[str, Any], problems: list[str]) -> ManifestRow:
    name = data.pop("name", None)
    if name is not None and not isinstance(name, str):
        problems.append(f"name: must be a string (found {type(name).__name__})")
        name = str(name)
    return ManifestRow(line, name or None, data, problems)


def _parse_jsonl(text: str) -> list[ManifestRow]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            rows.append(ManifestRow(number, None, {}, [f"Invalid JSON (column {exc.colno}: {exc.msg})"]))
            continue
        if not isinstance(data, dict):
            rows.append(
                ManifestRow(number, None, {}, [f"A row must be a JSON object, not {type(data).__name__}"])
            )
            continue
        rows.append(_split_name(number, data, []))
    return rows


def _parse_csv(text: str) -> list[ManifestRow]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows = []
    start = 1
    for record in reader:
        line, start = start, reader.line_num + 1
        if not record or not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            continue
        problems = []
        if len(record) > len(header):
            problems.append(f"{len(record)} cells for {len(header)} columns")
        data = {
            key: _coerce_csv(key, value)
            for key, value in zip(header, record, strict=False)
            if key and value.strip()
        }
        rows.append(_split_name(line, data, problems))
    return rows


def parse_manifest(text: str, fmt: ManifestFormat | None = None) -> list[ManifestRow]:
    """Parse manifest text (no checks of the requests themselves).

    Args:
        text: The manifest.
        fmt: ``"jsonl"`` or ``"csv"``; guessed from the first character when None.

    Returns:
        The rows, each with its line number.

    Example:
        >>> [r.data for r in parse_manifest("prompt,input_images,seed\\nA boat,a.png|b.png,7\\n", "csv")]
        [{'prompt': 'A boat', 'input_images': ['a.png', 'b.png'], 'seed': 7}]
    """
    text = text.lstrip("\ufeff")
    if fmt is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
        fmt = "jsonl" if first.startswith("{") else "csv"
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f'fmt must be "jsonl" or "csv", not {fmt!r}')
    return _parse_jsonl(text) if fmt == "jsonl" else _parse_csv(text)


def _manifest_problem(source: str, message: str, fix: str) -> InvalidRequest:
    return InvalidRequest([FieldProblem("manifest", message, found=source, fix=fix)])


def _remote_references(row: ManifestRow, manifest_url: str, allow_local: bool) -> None:
    """Resolve the references of a row of a manifest read from a URL (see :mod:`.sources`)."""
    for list_field in _LIST_FIELDS:
        values = row.data.get(list_field)
        if not isinstance(values, list):
            continue
        for i, uri in enumerate(values):
            if not isinstance(uri, str):
                continue  # the preflight names the wrong type
            kind, value = classify_reference(uri, manifest_url, allow_local=allow_local)
            key = f"{list_field}[{i}]"
            if kind == "remote":
                row.remote[key] = value
                values[i] = value
            elif kind == "outside" or (kind == "local" and not allow_local):
                row.problems.append(str(local_reference_problem(key, uri, manifest_url, kind == "outside")))
                row.refused = True


def read_manifest(
    source: str | os.PathLike[str], *, allow_local_references: bool = False
) -> tuple[list[ManifestRow], Path | None]:
    """Read a manifest from a local path or an fsspec URL (``s3://bucket/nightly.jsonl``).

    A manifest read from a URL may name files relative to itself (fetched from its store by
    :func:`plan_batch`), URLs and data: URIs, but no local file unless ``allow_local_references``:
    such a row gets a problem naming the field, the limit and the fix (see :mod:`.sources`).

    Args:
        source: Where the manifest is; ``.csv`` is CSV, ``.jsonl``/``.ndjson``/``.json`` JSONL,
            anything else is guessed from its first character.
        allow_local_references: Let a manifest read from a URL name local files (absolute, ``~``,
            ``file://``) and relative paths above its folder. Local manifests always may.

    Returns:
        ``(rows, base_dir)``: the rows, and the folder that relative local paths in them start
        from (the manifest's folder; None for a remote manifest, whose relative paths are URLs
        in :attr:`ManifestRow.remote`).

    Raises:
        InvalidRequest: Missing, unreadable, too large, not UTF-8, or without any row.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "batch.csv"
        >>> _ = p.write_text("name,prompt,duration\\nboat,A boat,5\\n")
        >>> rows, base = read_manifest(p)
        >>> [(r.line, r.name, r.data) for r in rows], base == p.parent.resolve()
        ([(2, 'boat', {'prompt': 'A boat', 'duration': '5'})], True)
    """
    text_source = str(source)
    suffix = Path(text_source.split("?", 1)[0]).suffix.lower()
    fmt: ManifestFormat | None = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(
        suffix
    )
    base_dir: Path | None = None
    try:
        if is_remote_manifest(text_source):
            import fsspec

            with fsspec.open(text_source, "rb") as handle:
                raw = handle.read(MAX_MANIFEST_BYTES + 1)
        else:
            path = Path(text_source.removeprefix("file://")).expanduser()
            with path.open("rb") as handle:
                raw = handle.read(MAX_MANIFEST_BYTES + 1)
            base_dir = path.resolve().parent
    except FileNotFoundError:
        raise _manifest_problem(text_source, "Manifest not found", "Check the path or URL") from None
    except (OSError, ImportError, ValueError) as exc:
        raise _manifest_problem(text_source, "Cannot read the manifest", str(exc)) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _manifest_problem(
            text_source, "Manifest too large", f"Split it (at most {MAX_MANIFEST_BYTES:,} bytes)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _manifest_problem(text_source, "The manifest is not valid UTF-8", "Save it as UTF-8") from None
    rows = parse_manifest(text, fmt)
    if not rows:
        raise _manifest_problem(text_source, "The manifest has no rows", "Add one request per line")
    if base_dir is None:
        for row in rows:
            _remote_references(row, text_source, allow_local_references)
    return rows, base_dir


def _fetch_remote(
    row: ManifestRow, cache_dir: str | os.PathLike[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """Return the row's data with its remote references fetched into the cache (local paths), and
    the references that could not be fetched."""
    if not row.remote:
        return row.data, []
    from ..references.preprocess import default_cache_dir

    cache = cache_dir or default_cache_dir()
    failed: list[str] = []
    data = {k: list(v) if k in _LIST_FIELDS and isinstance(v, list) else v for k, v in row.data.items()}
    for key, url in row.remote.items():
        list_field, index = key[:-1].split("[")
        location, sep, fragment = url.partition("#t=")
        try:
            local = fetch_reference(location, cache)
        except FileNotFoundError:
            failed.append(
                f"{key}: Reference not found beside the manifest (found: {location}). "
                "Fix: upload it there, or correct the path (relative to the manifest's folder)"
            )
            continue
        except (OSError, ValueError, ImportError) as exc:
            failed.append(f"{key}: Cannot fetch the reference (found: {location}). Fix: {exc}")
            continue
        data[list_field][int(index)] = str(local) + (sep + fragment if sep else "")
    return data, failed


def _fingerprint_request(row: ManifestRow, request: SeedanceRequest) -> SeedanceRequest:
    """The request with fetched references named by their URLs again (same on every machine)."""
    if not row.remote:
        return request
    update: dict[str, list[str]] = {}
    for key, url in row.remote.items():
        list_field, index = key[:-1].split("[")
        values = update.setdefault(list_field, list(getattr(request, list_field)))
        values[int(index)] = url
    return request.model_copy(update=update)


def _row_name(row: ManifestRow, request: SeedanceRequest, run_key: str | None) -> tuple[str, str | None, str]:
    """Return ``(name, row run key, fingerprint)``. Raises InvalidRequest for an unusable name."""
    if row.name is not None:
        name = safe_name(row.name)
        key = f"{run_key or ''}/{name}"
        return name, key, request.fingerprint(key)
    fingerprint = request.fingerprint(run_key)
    return default_name(request.prompt, fingerprint), run_key, fingerprint


def plan_batch(
    rows: Sequence[ManifestRow] | Sequence[Mapping[str, Any]],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    run_key: str | None = None,
    probe: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> BatchPlan:
    """Check every row (preflight, names, duplicates) and split them into runnable and rejected.

    Args:
        rows: Rows from :func:`read_manifest`, or plain request dicts (``name`` optional; line =
            position).
        base_dir: Folder that relative local paths start from.
        run_key: Batch-wide extra key of the journal fingerprints (rerun with another key to
            generate everything again).
        probe: Probe local reference files by content.
        cache_dir: Where references of a manifest read from a URL are fetched to
            (:attr:`ManifestRow.remote`; default ``$SEEDANCE_STATE_DIR/cache``).

    Returns:
        The plan.

    Example:
        >>> plan = plan_batch([{"prompt": "A boat", "duration": "5", "name": "b"},
        ...                    {"prompt": "A cat", "duration": "5", "name": "b"}])
        >>> [str(r) for r in plan.rejected]
        ["line 2 (b): name: Duplicate name 'b' (also on line 1)"]
    """
    plan = BatchPlan()
    seen: dict[str, BatchRow] = {}
    for index, item in enumerate(rows, start=1):
        row = item if isinstance(item, ManifestRow) else _split_name(index, dict(item), [])
        if row.refused:
            plan.rejected.append(RejectedRow(row.line, row.name, tuple(row.problems)))
            continue
        data, failed = _fetch_remote(row, cache_dir)
        if failed:
            plan.rejected.append(RejectedRow(row.line, row.name, (*row.problems, *failed)))
            continue
        problems = list(row.problems)
        report = check_request(data, endpoint="queue", base_dir=base_dir, probe=probe) if data else None
        if report is None:
            problems = problems or ["Empty row"]
        elif not report.ok or report.request is None:
            problems += [str(p) for p in report.errors] or ["Invalid request"]
        if problems or report is None or report.request is None:
            plan.rejected.append(RejectedRow(row.line, row.name, tuple(problems)))
            continue
        request = report.request
        try:
            name, key, fingerprint = _row_name(row, _fingerprint_request(row, request), run_key)
        except InvalidRequest as exc:
            plan.rejected.append(RejectedRow(row.line, row.name, tuple(str(p) for p in exc.problems)))
            continue
        if name in seen:
            earlier = seen[name]
            same = earlier.fingerprint == fingerprint
            message = (
                f"Same request as line {earlier.line} (give the rows different names to make both)"
                if same
                else f"name: Duplicate name {name!r} (also on line {earlier.line})"
            )
            plan.rejected.append(RejectedRow(row.line, row.name, (message,)))
            continue
        batch_row = BatchRow(
            row.line,
            name,
            request,
            key,
            fingerprint,
            estimate_cost(request.duration, request.num_generations),
            tuple(str(w) for w in report.warnings),
        )
        seen[name] = batch_row
        plan.rows.append(batch_row)
    return plan


def already_delivered(journal: Journal, fingerprint: str) -> list[dict[str, Any]] | None:
    """Return a row's recorded deliveries when every generation of its last attempt was delivered.

    *Delivered* here means delivered somewhere, by some earlier run: the journal keeps the last
    place each video went, whatever the target. Whether the target of this run holds them is the
    target's question (:meth:`~seedance_prefect.delivery.targets.DeliveryTarget.find_delivered`,
    asked by :func:`~seedance_prefect.batch.todo.select_rows`); a video delivered elsewhere is
    copied or downloaded again (:func:`~seedance_prefect.delivery.redeliver.redeliver`), never
    generated again.

    Args:
        journal: The enqueue journal.
        fingerprint: The row's fingerprint (:attr:`BatchRow.fingerprint`).

    Returns:
        One dict per generation, in the attempt's order (``generation_id``, ``video``, ``sha256``
        and whatever else the journal recorded), or None when the row still has to be generated
        (never enqueued, in flight, or not every video delivered).

    Example:
        >>> import tempfile
        >>> from seedance_prefect.generation.journal import JournalEntry
        >>> journal = Journal(tempfile.mkdtemp())
        >>> entry = JournalEntry(fingerprint="abc"); entry.begin_attempt().record(["g1"])
        >>> journal.save(entry); already_delivered(journal, "abc") is None
        True
        >>> entry.deliveries["g1"] = {"video": "/v/a.mp4", "sha256": "00"}; journal.save(entry)
        >>> already_delivered(journal, "abc")
        [{'generation_id': 'g1', 'sha256': '00', 'video': '/v/a.mp4'}]
    """
    entry = journal.load(fingerprint)
    last = entry.last_attempt if entry else None
    if entry is None or last is None or not last.generation_ids:
        return None
    if all(gid in entry.deliveries for gid in last.generation_ids):
        return [{"generation_id": gid, **entry.deliveries[gid]} for gid in last.generation_ids]
    return None
