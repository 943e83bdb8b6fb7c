"""A small ``multipart/form-data`` parser (keeps the emulator free of python-multipart)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart body.

    Attributes:
        name: Form field name.
        filename: File name, or None for a plain field.
        content_type: Declared content type, or None.
        data: Raw bytes.
    """

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    def text(self) -> str:
        """Return the data decoded as UTF-8.

        Returns:
            The text.

        Example:
            >>> FormPart("message", None, None, b"hi").text()
            'hi'
        """
        return self.data.decode("utf-8", errors="replace")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    msg = Message()
    msg["content-type"] = value
    params = {k.lower(): str(v) for k, v in msg.get_params(header="content-type", failobj=[])[1:]}
    return msg.get_content_type(), params


def parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    """Split a ``multipart/form-data`` body into parts.

    Args:
        content_type: The request's Content-Type header (with ``boundary``).
        body: The raw body.

    Returns:
        The parts, in order.

    Raises:
        ValueError: Not multipart, or no boundary.

    Example:
        >>> body = (b'--b\\r\\nContent-Disposition: form-data; name="file"; filename="a.txt"\\r\\n'
        ...         b'Content-Type: text/plain\\r\\n\\r\\nhello\\r\\n--b--\\r\\n')
        >>> part = parse_multipart("multipart/form-data; boundary=b", body)[0]
        >>> part.name, part.filename, part.data
        ('file', 'a.txt', b'hello')
    """
    kind, params = _header_params(content_type)
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise ValueError("not multipart/form-data")
    delimiter = b"\r\n--" + params["boundary"].encode("latin-1")
    parts: list[FormPart] = []
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        _, disposition = _header_params("x/x; " + headers.get("content-disposition", "").partition(";")[2])
        if "name" not in disposition:
            continue
        parts.append(
            FormPart(
                name=disposition["name"],
                filename=disposition.get("filename"),
                content_type=headers.get("content-type"),
                data=data,
            )
        )
    return parts
