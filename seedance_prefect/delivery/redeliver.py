"""Deliver to *this* target a video an earlier run delivered elsewhere, never with a new generation.

A request or a batch row that was delivered to one target and is run again with another (another
``--out`` or ``--deliver-to``) must end with its videos in the new target, at no cost. For each
generation the journal recorded as delivered, :func:`redeliver` tries, in order:

1. **already there**: the target holds it
   (:meth:`~seedance_prefect.delivery.targets.DeliveryTarget.find_delivered`: recorded location
   under the target's URL, object present with the recorded size); nothing is written;
2. **copied**: the earlier delivery is read (a local path, or any fsspec URL such as
   ``s3://bucket/key``; reading may fail, e.g. on another machine or once it was removed), checked
   against the journal's sha256 and delivered with its sidecar (which gains ``copied_from``). When
   the target turns out to hold the same bytes under the name, it was *already there* after all;
3. **downloaded again**: the caller's ``download_again`` (GET the generation, then download ->
   verify -> deliver, the usual steps) while the service still serves the result
   (:func:`succeeded_generation` tells when it no longer does);
4. otherwise: :class:`~seedance_prefect.errors.DownloadError`, not transient, saying that only a new
   (paid) generation can deliver it and naming how to ask for one (``--new``).

Nothing here posts a generation.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.delivery.targets import LocalFolderTarget
    >>> tmp = pathlib.Path(tempfile.mkdtemp()); video = tmp / "g1.mp4"; _ = video.write_bytes(b"mp4")
    >>> first = LocalFolderTarget(tmp / "a").deliver(video, "boat", {}, generation_id="g1")
    >>> again = redeliver(first.to_dict(), LocalFolderTarget(tmp / "b"), "boat", workdir=tmp / "work")
    >>> again.how, again.source == first.video, pathlib.Path(again.delivered.video).read_bytes()
    ('copied', True, b'mp4')
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..client import SeedanceClient
from ..errors import DownloadError, NotFoundError, SeedanceError
from ..models import Generation
from .folder import DeliveredVideo
from .targets import DeliveryTarget

__all__ = ["NEW_HINT", "Redelivered", "copy_delivery", "redeliver", "succeeded_generation"]

#: How to get past a video that can be neither copied nor downloaded again.
NEW_HINT = "run again with --new to pay for one"
#: A sidecar is a few kB; more than this is not one of ours.
_MAX_SIDECAR_BYTES = 1 << 20
_CHUNK = 1 << 20
#: Sidecar keys that describe the copy itself and are written again by the target.
_REWRITTEN = ("video", "sha256", "size_bytes")

How = Literal["already there", "copied", "downloaded again"]


@dataclass(frozen=True)
class Redelivered:
    """A video delivered to a target without a new generation.

    Attributes:
        how: ``"already there"`` (nothing written), ``"copied"`` (from the earlier delivery) or
            ``"downloaded again"`` (from the service).
        delivered: Where it is in the target now.
        source: Where the bytes came from: the earlier delivery's location, ``service`` or, when
            it was already there, the target's own copy.
    """

    how: How
    delivered: DeliveredVideo
    source: str


def _open(location: str) -> Any:
    """A binary reader of a local path or an fsspec URL (a context manager)."""
    if "://" in location:
        import fsspec

        return fsspec.open(location, "rb")
    return open(location, "rb")


def _sidecar_of(location: str) -> dict[str, Any]:
    """The sidecar next to an earlier delivery, or ``{}`` when it cannot be read."""
    if not location.endswith(".mp4"):
        return {}
    try:
        with _open(location[: -len(".mp4")] + ".json") as handle:
            document = json.loads(handle.read(_MAX_SIDECAR_BYTES))
    except Exception:  # gone, unreadable here, not JSON: the copy gets a minimal sidecar
        return {}
    return {k: v for k, v in document.items() if k not in _REWRITTEN} if isinstance(document, dict) else {}


def _copy_locally(location: str, digest: str, dest: Path) -> None:
    """Copy an earlier delivery to ``dest`` and check its sha256; raise DownloadError when it cannot be."""
    found = hashlib.sha256()
    try:
        with _open(location) as source, dest.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                found.update(chunk)
                sink.write(chunk)
    except Exception as exc:  # missing, no access or no package for the URL here: not copyable
        dest.unlink(missing_ok=True)
        reason = "is gone" if isinstance(exc, FileNotFoundError) else f"cannot be read here ({exc})"
        raise DownloadError(f"the earlier delivery {location} {reason}", transient=False) from None
    if found.hexdigest() != digest:
        dest.unlink(missing_ok=True)
        raise DownloadError(
            f"the earlier delivery {location} has other bytes now (sha256 {found.hexdigest()[:16]}..., "
            f"recorded {digest[:16]}...)",
            transient=False,
        )


def copy_delivery(
    delivery: Mapping[str, Any], target: DeliveryTarget, name: str, *, workdir: str | Path
) -> DeliveredVideo:
    """Copy a recorded delivery to ``target`` under ``name``, checked against the recorded sha256.

    The bytes go through a local file in ``workdir`` (removed afterwards); the target's own rules
    apply (upload verified by size and sha256, same bytes under the name reused). The sidecar is
    the earlier one, when it can be read, plus ``copied_from``.

    Args:
        delivery: What the journal recorded: ``generation_id``, ``video`` (path or URL), ``sha256``.
        target: Where to deliver.
        name: Base name in the target.
        workdir: Local folder for the copy in transit.

    Returns:
        The delivery (``reused=True`` when the target already had the same bytes under the name).

    Raises:
        DownloadError: The earlier delivery is gone, cannot be read here, or has other bytes now
            (not transient).
        DeliveryError: The target could not store it.

    Example:
        >>> import tempfile, pathlib
        >>> from seedance_prefect.delivery.targets import LocalFolderTarget, resolve_target
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); video = tmp / "g1.mp4"; _ = video.write_bytes(b"mp4")
        >>> first = LocalFolderTarget(tmp / "a").deliver(video, "boat", {"seed": 3}, generation_id="g1")
        >>> copy = copy_delivery(first.to_dict(), resolve_target("memory://copy-doc"), "boat", workdir=tmp)
        >>> copy.video, copy.sha256 == first.sha256
        ('memory:///copy-doc/boat.mp4', True)
    """
    location, digest = str(delivery.get("video") or ""), str(delivery.get("sha256") or "")
    generation_id = str(delivery.get("generation_id") or "")
    if not location or not digest:
        raise DownloadError("the journal has no location or sha256 of the earlier delivery", transient=False)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    local = work / f".copy-{generation_id[:16] or 'video'}-{uuid.uuid4().hex[:8]}.mp4"
    try:
        _copy_locally(location, digest, local)
        sidecar = {"generation_id": generation_id, **_sidecar_of(location), "copied_from": location}
        return target.deliver(local, name, sidecar, generation_id=generation_id, sha256=digest, move=True)
    finally:
        local.unlink(missing_ok=True)


def succeeded_generation(client: SeedanceClient, generation_id: str) -> Generation:
    """Return a generation's row when the service still serves its result.

    The queue row is read first; when it answers 404, the history lookup (``client.history``, for
    a queue that forgets terminal rows) is asked before the generation is called gone.

    Args:
        client: The account's client.
        generation_id: The generation.

    Returns:
        Its succeeded row.

    Raises:
        DownloadError: The service no longer knows it (404) or it has no result (not transient).
        SeedanceError: Any other answer (e.g. a transient 5xx or a broken connection).

    Example:
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         try:
        ...             succeeded_generation(client, "unknown-id")
        ...         except DownloadError as exc:
        ...             print(exc)
        the service no longer has generation unknown-id (404)
    """
    try:
        row = client.get(generation_id)
    except NotFoundError:
        # a queue may forget terminal rows; the history lookup (where the client has one) keeps them
        history = getattr(client, "history", None)
        try:
            if history is None:
                raise
            row = history(generation_id)
        except NotFoundError:
            gone = f"the service no longer has generation {generation_id} (404)"
            raise DownloadError(gone, transient=False) from None
    if row.status != "succeeded" or not row.result_url:
        raise DownloadError(
            f"generation {generation_id} is {row.status} on the service, without a result", transient=False
        )
    return row


def redeliver(
    delivery: Mapping[str, Any],
    target: DeliveryTarget,
    name: str,
    *,
    workdir: str | Path,
    download_again: Callable[[], DeliveredVideo] | None = None,
    new_hint: str = NEW_HINT,
) -> Redelivered:
    """Deliver a recorded video to ``target`` without a new generation (see the module docstring).

    Args:
        delivery: What the journal recorded: ``generation_id``, ``video``, ``sha256`` (and maybe
            ``size_bytes``).
        target: Where it must be.
        name: Base name in the target.
        workdir: Local folder for a copy in transit.
        download_again: Downloads, verifies and delivers the result from the service again (raises
            :class:`~seedance_prefect.errors.DownloadError` via :func:`succeeded_generation` when the
            service no longer serves it); None: no such step.
        new_hint: How to ask for a new generation, for the error when nothing else works.

    Returns:
        How it got there.

    Raises:
        DownloadError: Neither copy nor download worked; the message says why and names
            ``new_hint`` (not transient).
        SeedanceError: A transient error of the service while downloading again (worth another
            run), or the target could not store the video.

    Example:
        >>> import tempfile, pathlib
        >>> from seedance_prefect.delivery.targets import LocalFolderTarget
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); video = tmp / "g1.mp4"; _ = video.write_bytes(b"mp4")
        >>> first = LocalFolderTarget(tmp / "a").deliver(video, "boat", {}, generation_id="g1")
        >>> redeliver(first.to_dict(), LocalFolderTarget(tmp / "a"), "boat", workdir=tmp).how
        'already there'
        >>> pathlib.Path(first.video).unlink()
        >>> try:
        ...     redeliver(first.to_dict(), LocalFolderTarget(tmp / "b"), "boat", workdir=tmp)
        ... except DownloadError as exc:
        ...     message = str(exc).replace(first.video, "<a>/boat.mp4")
        >>> print(message.replace(" (", "\\n(").replace("; ", ";\\n"))
        Generation g1 cannot be delivered again without a new generation
        (run again with --new to pay for one): the earlier delivery <a>/boat.mp4 is gone;
        downloading the result again was not tried
    """
    found = target.find_delivered(delivery)
    if found is not None:
        return Redelivered("already there", found, found.video)
    location = str(delivery.get("video") or "")
    generation_id = str(delivery.get("generation_id") or "")
    try:
        copied = copy_delivery(delivery, target, name, workdir=workdir)
    except DownloadError as exc:
        reasons = [str(exc)]
    else:
        return Redelivered("already there" if copied.reused else "copied", copied, location)
    if download_again is None:
        reasons.append("downloading the result again was not tried")
    else:
        try:
            again = download_again()
        except SeedanceError as exc:
            if exc.transient:
                raise
            reasons.append(str(exc))
        else:
            return Redelivered("already there" if again.reused else "downloaded again", again, "service")
    raise DownloadError(
        f"Generation {generation_id} cannot be delivered again without a new generation ({new_hint}): "
        + "; ".join(reasons),
        transient=False,
    )
