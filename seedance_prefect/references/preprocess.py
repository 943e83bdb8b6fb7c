"""Prepare every reference of a request: fix what the service would refuse, host what is local.

:func:`prepare` probes each local file and ``data:`` URI, plans the fixes
(:func:`~.plan.plan_references`), rewrites what needs it (:mod:`.normalize_image`,
:mod:`.normalize_video`, :mod:`.normalize_audio`), checks every output by probing it against the
API's rules, and hosts local files through a :class:`~.hosting.Hosting` strategy. URLs pass
through; a compliant ``data:`` URI is sent exactly as given; a compliant local file is hosted
byte-identical, never re-encoded.

Outputs are cached by the sha256 of the input bytes plus the target (sizes, trims, encoder
settings) in ``cache_dir`` (default ``$SEEDANCE_STATE_DIR/cache``, else ``~/.seedance/cache``), so a
re-run does not encode again; the cache also keeps what was changed, so the fixes are reported
the same way.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.media.samples import make_image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_image(d / "wide.jpg", 1600, 400)
    >>> body = {"prompt": "@Image1", "input_images": [str(d / "wide.jpg")]}
    >>> prepared = prepare(body, cache_dir=d / "cache")
    >>> [(f.what, f.after) for f in prepared.fixes], prepared.request.input_images[0][:23]
    ([('pad', '1600x640 = 2.50')], 'data:image/jpeg;base64,')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import file_sha256, state_dir
from ..errors import FieldProblem, InvalidRequest, SeedanceError
from ..media.probe import MediaInfo, decode_data_uri, probe_path
from ..media.targets import AudioTarget, ImageTarget, VideoTarget
from ..models import SeedanceRequest
from ..rules import audio_rules, fmt_bytes, fmt_pixels, image_rules, video_rules, video_total_rules
from .fixes import AppliedFix, FixOptions, PlannedFix
from .hosting import DataUriHosting, Hosting, mime_type
from .plan import ReferencePlan, plan_references
from .plan import resolve_reference as _resolve
from .source import FIELDS, ReferenceInfo

__all__ = ["CACHE_VERSION", "PreparedReference", "PreparedReferences", "default_cache_dir", "prepare"]

#: Bumped when normalisation changes in a way that makes cached outputs stale.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$SEEDANCE_STATE_DIR/cache``, else ``~/.seedance/cache``.

    Example:
        >>> default_cache_dir().name
        'cache'
    """
    return state_dir("cache")


@dataclass
class PreparedReference:
    """What became of one reference.

    Attributes:
        field: ``"input_videos[0]"``...
        source: The reference as given (data: URIs shortened).
        action: ``"pass"`` (unchanged), ``"rehost"`` (same bytes, new URI) or ``"encode"``.
        uri: What is sent (data: URIs shortened for display; see the request for the real one).
        hosting: The strategy that hosted it (``None`` for URLs and data: URIs passed as given).
        sha256: sha256 of the bytes sent (None for URLs).
        size_bytes: Size of the bytes sent.
        cached: The output came from the cache.
        seconds: Time spent preparing it (encoding and hosting).
        output: The prepared local file (None when nothing local was made or used).
    """

    field: str
    source: str
    action: str
    uri: str
    hosting: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    cached: bool = False
    seconds: float = 0.0
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class PreparedReferences:
    """A request whose references the service can read and accepts, and what was changed.

    Attributes:
        request: The request to send (local paths replaced by hosted URIs).
        fixes: Every change made, measured on the outputs.
        references: One record per reference.
    """

    request: SeedanceRequest
    fixes: list[AppliedFix] = field(default_factory=list)
    references: list[PreparedReference] = field(default_factory=list)

    def table(self) -> list[dict[str, str]]:
        """Rows for a table artifact: one per fix, or one per reference sent unchanged.

        Example:
            >>> PreparedReferences(SeedanceRequest(prompt="x")).table()
            []
        """
        rows = [
            {
                "field": f.field,
                "file": f.file,
                "what": f.what,
                "why": f.why,
                "before": f.before,
                "after": f.after,
                "cached": "yes" if f.cached else "no",
            }
            for f in self.fixes
        ]
        changed = {f.field for f in self.fixes}
        rows += [
            {
                "field": r.field,
                "file": r.source,
                "what": "none",
                "why": "compliant: sent byte-identical",
                "before": "",
                "after": r.hosting or "as given",
                "cached": "",
            }
            for r in self.references
            if r.field not in changed
        ]
        return rows

    def __str__(self) -> str:
        if not self.fixes:
            return f"{len(self.references)} reference(s), none changed"
        return "\n".join(str(f) for f in self.fixes)


class _Cache:
    """Content-addressed store of prepared outputs and their fix records."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def key(self, source_sha: str, target: Any, options: FixOptions) -> str:
        spec = {
            "v": CACHE_VERSION,
            "source": source_sha,
            "kind": type(target).__name__,
            "target": dataclasses.asdict(target),
            "options": options.key(),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def _meta(self, key: str) -> Path:
        return self.root / "prepared" / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        try:
            meta = json.loads(self._meta(key).read_text())
            path = self._meta(key).with_name(meta["file"])
            if path.is_file() and path.stat().st_size == meta["size_bytes"]:
                return path, meta
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def put(self, key: str, made: Path, ext: str, meta: dict[str, Any]) -> Path:
        folder = self._meta(key).parent
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{key}.{ext}"
        made.replace(final)
        meta = {**meta, "file": final.name, "size_bytes": final.stat().st_size}
        tmp = self._meta(key).with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(self._meta(key))
        return final

    def scratch(self, suffix: str) -> Path:
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}{suffix}"


def _after(fix: PlannedFix, info: MediaInfo, target: Any) -> str:
    """The ``after`` of a fix, measured on the output."""
    w, h = info.width or 0, info.height or 0
    size = fmt_bytes(info.size_bytes or 0)
    measured = {
        "scale": fmt_pixels(w, h),
        "resize": f"{w}x{h}",
        "orient": f"{w}x{h} upright, no orientation tag",
        "rotate": f"{w}x{h} upright",
        "pad": f"{w}x{h} = {w / max(h, 1):.2f}",
        "crop": f"{w}x{h} = {w / max(h, 1):.2f}",
        "frame rate": f"{info.fps or 0:.3f}".rstrip("0").rstrip(".") + " fps constant",
        "compress": f"{size} {str(info.container).upper()}",
        "resample": f"{info.sample_rate or 0:,} Hz",
        "convert": str(info.container).upper()
        + (f" ({info.video_codec or info.audio_codec})" if info.kind != "image" else ""),
        "extract audio": f"{str(info.container).upper()} audio",
    }
    if fix.what == "trim":
        start = getattr(target, "start", 0.0)
        duration = info.duration or 0.0
        return f"{start:.1f}-{start + duration:.1f} s ({duration:.1f} s)"
    if fix.what == "re-encode":
        rate = (info.size_bytes or 0) * 8 / max(info.duration or 1.0, 1e-6)
        return size + (f" ({rate / 1e6:.1f} Mbit/s)" if info.kind == "video" else "")
    return measured.get(fix.what, fix.after)


def _check_output(field_name: str, info: MediaInfo, label: str) -> None:
    """Refuse an output that still breaks a rule (a bug guard; never expected)."""
    rule = {"image": image_rules, "video": video_rules, "audio": audio_rules}[
        FIELDS[field_name.split("[")[0]]
    ]
    bad = [p for p in rule(field_name, info) if p.severity == "error" or p.fixable]
    if bad:
        raise SeedanceError(f"Preparing {label} gave an output that still breaks a rule: {bad[0]}")


_NORMALIZERS: dict[type, Callable[[Path, Path, Any], Path]] = {}


def _normalizer(target: Any) -> Callable[[Path, Path, Any], Path]:
    if not _NORMALIZERS:
        from ..media.normalize_audio import normalize_audio
        from ..media.normalize_image import normalize_image
        from ..media.normalize_video import normalize_video

        _NORMALIZERS.update(
            {ImageTarget: normalize_image, VideoTarget: normalize_video, AudioTarget: normalize_audio}
        )
    return _NORMALIZERS[type(target)]


class _Preparer:
    def __init__(self, cache: _Cache, hosting: Hosting, options: FixOptions) -> None:
        self.cache, self.hosting, self.options = cache, hosting, options

    def source_file(self, ref: ReferenceInfo) -> tuple[Path, str]:
        """The local file holding a reference's bytes (data: URIs are written to the cache)."""
        if ref.kind == "path":
            assert ref.path is not None
            return ref.path, file_sha256(ref.path)[0]
        from .fixes import split_trim

        _mime, data = decode_data_uri(split_trim(ref.uri)[0])
        sha = hashlib.sha256(data).hexdigest()
        path = self.cache.root / "inputs" / sha
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache.scratch(".in")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path, sha

    def encode(self, rp: ReferencePlan, src: Path, sha: str) -> tuple[Path, list[AppliedFix], bool]:
        target = rp.target
        key = self.cache.key(sha, target, self.options)
        hit = self.cache.get(key)
        if hit is not None:
            path, meta = hit
            fixes = [AppliedFix(**{**f, "cached": True}) for f in meta["fixes"]]
            return path, [dataclasses.replace(f, field=rp.ref.field, file=rp.ref.label) for f in fixes], True
        scratch = self.cache.scratch(f".{target.extension}")  # type: ignore[union-attr]
        try:
            _normalizer(target)(src, scratch, target)
            info = probe_path(scratch)
            _check_output(rp.ref.field, info, rp.ref.label)
            fixes = [AppliedFix(**{**f.to_dict(), "after": _after(f, info, target)}) for f in rp.fixes]
            ext = {"jpeg": "jpg"}.get(str(info.container), str(info.container))
            meta = {"fixes": [f.to_dict() for f in fixes], "media": info.to_dict(), "source_sha256": sha}
            return self.cache.put(key, scratch, ext, meta), fixes, False
        finally:
            scratch.unlink(missing_ok=True)

    def one(self, rp: ReferencePlan) -> tuple[str, PreparedReference, list[AppliedFix]]:
        ref = rp.ref
        started = time.perf_counter()
        shown = ref.label if ref.kind != "url" else ref.uri
        if ref.kind == "url" or (ref.kind == "data" and rp.action == "pass"):
            record = PreparedReference(ref.field, shown, "pass", _short(ref.uri), size_bytes=ref.size_bytes)
            return ref.uri, record, []
        src, sha = self.source_file(ref)
        fixes: list[AppliedFix] = []
        cached = False
        out, info = src, ref.media
        if rp.action == "encode":
            out, fixes, cached = self.encode(rp, src, sha)
            info = probe_path(out)
        elif rp.action == "rehost":
            fixes = [AppliedFix(**f.to_dict()) for f in rp.fixes]
        assert info is not None
        mime = mime_type(info)
        out_sha = sha if out == src else file_sha256(out)[0]
        uri = self.hosting.host(out, mime=mime, sha256=out_sha)
        record = PreparedReference(
            ref.field,
            shown,
            rp.action,
            _short(uri),
            self.hosting.name,
            out_sha,
            out.stat().st_size,
            cached,
            round(time.perf_counter() - started, 3),
            str(out),
        )
        return uri, record, fixes


def _short(uri: str) -> str:
    if uri.startswith("data:"):
        head = uri.split(",", 1)[0]
        return f"{head},... ({len(uri):,} chars)"
    return uri


def prepare(
    request: SeedanceRequest | Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hosting: Hosting | None = None,
    options: FixOptions | None = None,
    fix: bool = True,
) -> PreparedReferences:
    """Fix and host every reference of a request.

    Args:
        request: A :class:`~seedance_prefect.models.SeedanceRequest` or a body mapping; local paths
            may end in ``#t=in,out`` (in/out points, seconds).
        base_dir: Folder relative paths start from (default: the working directory).
        cache_dir: Cache of prepared outputs (default :func:`default_cache_dir`).
        hosting: How local files reach the service (default :class:`~.hosting.DataUriHosting`).
        options: Fix options.
        fix: False: only host local files as they are (nothing rewritten; in/out points refused).

    Returns:
        The request to send and every change made.

    Raises:
        InvalidRequest: A reference cannot be fixed or read (each problem names the field and
            the file).
        HostingError: A file could not be hosted.
    """
    options = options or FixOptions()
    hosting = hosting or DataUriHosting()
    body = request.model_dump() if isinstance(request, SeedanceRequest) else dict(request)
    refs = [
        _resolve(f"{name}[{i}]", str(uri), base_dir)
        for name in FIELDS
        for i, uri in enumerate(body.get(name) or [])
    ]
    plan = plan_references(refs, options)
    if not fix:
        plan = _without_fixes(plan)
    plan.raise_for_errors()
    if fix:
        _check_combined(plan)
    preparer = _Preparer(_Cache(Path(cache_dir) if cache_dir else default_cache_dir()), hosting, options)
    prepared = PreparedReferences(SeedanceRequest.model_validate({**body, **{n: [] for n in FIELDS}}))
    sent: dict[str, list[str]] = {n: [] for n in FIELDS}
    for rp in plan.references:
        uri, record, fixes = preparer.one(rp)
        sent[rp.ref.field.split("[")[0]].append(uri)
        prepared.references.append(record)
        prepared.fixes += fixes
    prepared.request = SeedanceRequest.model_validate({**body, **sent})
    return prepared


def _without_fixes(plan: Any) -> Any:
    """Drop every planned fix: the references go as they are (in/out points cannot be honoured)."""
    for rp in plan.references:
        if rp.ref.trim is not None:
            plan.errors.append(
                FieldProblem(
                    rp.ref.field,
                    "In/out points (#t=) need reference preprocessing",
                    found=rp.ref.uri,
                    fix="Turn preprocessing on (fix_references=True), or remove #t=",
                )
            )
        rp.action, rp.target, rp.fixes = "pass", None, []
    return plan


def _check_combined(plan: Any) -> None:
    """Refuse combined totals that the plan leaves outside the limits (e.g. remote videos)."""
    videos = [
        (rp.ref.field, rp.expected or rp.ref.media) for rp in plan.references if rp.ref.modality == "video"
    ]
    if videos and all(info is not None for _f, info in videos):
        problems = [p for p in video_total_rules(videos) if p.message != "Videos too large in total"]
        if problems:
            raise InvalidRequest(problems)
