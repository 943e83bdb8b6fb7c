"""Stream a synchronous ``b64_json`` answer to disk without holding the video in memory.

The synchronous endpoint can return the whole MP4 inline, base64-encoded inside JSON
(``{"created": ..., "videos": [{"b64_json": "AAAA..."}]}``). Parsing that JSON holds the body, the
decoded string and the bytes at once: three copies of a 45 MB video. :class:`InlineVideoFile`
instead reads the answer as it arrives: the first ``b64_json`` value is decoded straight into the
target file (written atomically), every other byte of the answer is kept as a small envelope, with
the value replaced by ``""``, for the usual parsing.

Example:
    >>> import base64, json, tempfile
    >>> from pathlib import Path
    >>> body = json.dumps({"created": 1, "videos": [{"b64_json": base64.b64encode(b"MP4!").decode()}]})
    >>> target = Path(tempfile.mkdtemp()) / "v.mp4"
    >>> with InlineVideoFile(target, max_bytes=None) as out:
    ...     for i in range(0, len(body), 7):  # any chunking
    ...         out.write(body[i : i + 7].encode())
    >>> target.read_bytes(), json.loads(out.envelope)["videos"]
    (b'MP4!', [{'b64_json': ''}])
"""

from __future__ import annotations

import binascii
import re
from types import TracebackType
from typing import Literal

import httpx

from ..errors import DownloadError
from ._atomic import AtomicFile

__all__ = ["InlineVideoFile"]

_KEY = re.compile(rb'"b64_json"\s*:\s*"')
#: The envelope (the answer without the video) is small; more than this is not a Seedance answer.
MAX_ENVELOPE_BYTES = 1 << 20


class InlineVideoFile(AtomicFile):
    """An :class:`~seedance_prefect.client._atomic.AtomicFile` fed with a JSON answer, keeping only the video.

    Attributes:
        envelope: The answer's bytes with the first ``b64_json`` value emptied (valid JSON).
        found: Whether a ``b64_json`` value was found. Without one (a ``url`` answer) no file is
            written, and :attr:`envelope` holds the whole answer.
    """

    def __init__(self, path: object, *, max_bytes: int | None, label: str = "") -> None:
        super().__init__(path, max_bytes=max_bytes, label=label)  # type: ignore[arg-type]
        self.envelope = bytearray()
        self.found = False
        self._state: Literal["before", "inside", "after"] = "before"
        self._b64 = bytearray()  # base64 text not yet decoded (under 4 chars, or a partial escape)

    def write(self, data: bytes) -> None:
        """Feed the next bytes of the answer."""
        while data:
            data = self._inside(data) if self._state == "inside" else self._outside(data)

    def _outside(self, data: bytes) -> bytes:
        if self._state == "after":
            self._keep(data)
            return b""
        start = max(0, len(self.envelope) - 32)  # the key may straddle two chunks
        self._keep(data)
        match = _KEY.search(self.envelope, start)
        if not match:
            return b""
        rest = bytes(self.envelope[match.end() :])
        del self.envelope[match.end() :]
        self._state, self.found = "inside", True
        return rest

    def _inside(self, data: bytes) -> bytes:
        end = data.find(b'"')
        while end > 0 and _escaped(self._b64 + data[:end]):
            end = data.find(b'"', end + 1)
        value, rest = (data, b"") if end < 0 else (data[:end], data[end:])
        self._b64 += value
        self._decode(final=end >= 0)
        if end >= 0:
            self._state = "after"
            self._keep(rest)  # the closing quote and what follows
        return b""

    def _decode(self, *, final: bool) -> None:
        text, carry = bytes(self._b64), b""
        if not final and _escaped(text):  # a chunk ended inside an escape: finish it next time
            text, carry = text[:-1], b"\\"
        if b"\\" in text:  # the JSON escapes a base64 string may carry: \/ and line breaks
            text = text.replace(b"\\/", b"/").replace(b"\\n", b"").replace(b"\\r", b"")
        usable = len(text) if final else len(text) - len(text) % 4
        try:
            super().write(binascii.a2b_base64(text[:usable], strict_mode=True))
        except binascii.Error as exc:
            raise DownloadError(
                f"The inline video of {self.label} is not valid base64: {exc}", transient=False
            ) from exc
        self._b64 = bytearray(text[usable:] + carry)

    def expect(self, response: httpx.Response) -> int | None:
        """Return ``Content-Length`` (the cap applies to the decoded video, checked as it is written)."""
        try:
            return int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            return None

    def _keep(self, data: bytes) -> None:
        self.envelope += data
        if len(self.envelope) > MAX_ENVELOPE_BYTES:
            raise DownloadError(
                f"The answer of {self.label} holds over {MAX_ENVELOPE_BYTES} bytes besides the video",
                transient=False,
            )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None and (not self.found or self._state == "inside"):
            if self._state == "inside":
                exc = DownloadError(f"The inline video of {self.label} ends before its closing quote")
            self._file.close()
            self.temp_path.unlink(missing_ok=True)
            if exc is not None:
                raise exc
            return False
        return super().__exit__(exc_type, exc, tb)


def _escaped(text: bytes) -> bool:
    """Whether a quote right after ``text`` is escaped (an odd run of backslashes before it)."""
    run = len(text) - len(text.rstrip(b"\\"))
    return run % 2 == 1
