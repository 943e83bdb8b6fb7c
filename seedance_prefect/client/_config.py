"""Client configuration: the API key, the base URL, the ``User-Agent`` and the shared SSL context.

Also the URL helpers every other piece uses: :func:`origin` (what the key is scoped to) and
:func:`public_url` (a URL fit for messages and logs).
"""

from __future__ import annotations

import functools
import ssl
import threading
from typing import Any

import httpx

from .._version import __version__
from ..errors import AuthenticationError
from ..limits import DEFAULT_BASE_URL
from ..settings import get_settings

__all__ = [
    "DEFAULT_PORTS",
    "REDACTED",
    "local_auth_error",
    "origin",
    "public_url",
    "resolve_api_key",
    "resolve_base_url",
    "ssl_context",
    "user_agent_header",
]

#: What a secret is replaced with in text shown to anyone.
REDACTED = "***"
#: Default port of each URL scheme the client speaks.
DEFAULT_PORTS = {"http": 80, "https": 443}

_SSL_LOCK = threading.Lock()


@functools.cache
def _build_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def ssl_context() -> ssl.SSLContext:
    """Return one verifying SSL context shared by every client of the process.

    Building one (loading the CA bundle) costs 0.1-0.2 s of CPU on a small machine; a flow makes
    several clients, so they share this one instead of each building its own. The first call is
    serialised: twenty batch threads starting at once build it once, not twenty times.

    Example:
        >>> ssl_context() is ssl_context()
        True
    """
    with _SSL_LOCK:
        return _build_ssl_context()


def local_auth_error(message: str) -> AuthenticationError:
    """Build an :class:`AuthenticationError` for a key problem found before any request.

    Its message is ``message`` alone (no "the service answered"), since nothing was sent.

    Example:
        >>> error = local_auth_error("No API key")
        >>> str(error), error.status_code
        ('No API key', 401)
    """
    error = AuthenticationError(401, "unauthenticated", message)
    error.args = (message,)
    return error


def resolve_api_key(api_key: Any) -> str:
    """Return the API key to use: ``api_key``, else ``OXEN_API_KEY``; refuse missing or unusable keys.

    Accepts a plain string or anything with ``get_secret_value()`` (pydantic ``SecretStr``). A pasted
    ``"Bearer "`` prefix is dropped.

    Raises:
        AuthenticationError: No key, or a key holding characters an HTTP header cannot carry. The
            message never repeats the key.

    Example:
        >>> resolve_api_key("  Bearer abc123 ")
        'abc123'
        >>> resolve_api_key("two words")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.AuthenticationError: The API key holds characters an HTTP header...
    """
    if api_key is not None and hasattr(api_key, "get_secret_value"):
        api_key = api_key.get_secret_value()
    key = str(api_key if api_key is not None else get_settings().api_key or "").strip()
    if key[:7].lower() == "bearer ":
        key = key[7:].strip()
    if not key:
        raise local_auth_error("No API key: set OXEN_API_KEY or pass api_key=...")
    if not all(33 <= ord(char) <= 126 for char in key):
        raise local_auth_error(
            "The API key holds characters an HTTP header cannot carry (spaces, control or non-ASCII "
            "characters); check OXEN_API_KEY or api_key="
        )
    return key


def resolve_base_url(base_url: str | None) -> str:
    """Return the API base URL: ``base_url``, else ``OXEN_BASE_URL``, else the public hub; no trailing slash.

    Example:
        >>> resolve_base_url("http://127.0.0.1:8000/api/")
        'http://127.0.0.1:8000/api'
    """
    url = (base_url or get_settings().base_url).strip().rstrip("/")
    parsed = httpx.URL(url)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}")
    return url


def user_agent_header(extra: str | None = None) -> str:
    """Return the ``User-Agent`` value, e.g. ``seedance-prefect/0.1.0 httpx/0.28.1 my-app/2``.

    Example:
        >>> agent = user_agent_header(" my-app/2 ")
        >>> agent.startswith("seedance-prefect/"), agent.endswith(" my-app/2")
        (True, True)
    """
    value = f"seedance-prefect/{__version__} httpx/{httpx.__version__}"
    return f"{value} {extra.strip()}" if extra and extra.strip() else value


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` of a URL with the default port filled in.

    Example:
        >>> origin("https://HUB.oxen.ai/api") == origin("https://hub.oxen.ai:443/x")
        True
    """
    url = httpx.URL(url)
    return url.scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme)


def public_url(url: httpx.URL | str) -> str:
    """Return a URL without user info, query or fragment, for messages and logs.

    Result URLs are signed: their query string is a credential of its own.

    Example:
        >>> public_url("https://u:p@files.example.com/v.mp4?sig=secret#t")
        'https://files.example.com/v.mp4'
    """
    url = httpx.URL(url)
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{path}"
