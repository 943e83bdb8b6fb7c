"""Bearer authentication scoped to the API's own origin (:class:`OriginAuth`)."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from ._config import DEFAULT_PORTS, REDACTED, origin

__all__ = ["OriginAuth"]


class OriginAuth(httpx.Auth):
    """Bearer authentication that only ever reaches the API's own origin.

    The header is built per request, after checking the request's scheme, host and port against
    the base URL; requests anywhere else (result files on a storage host) go without it, even if a
    caller-supplied ``httpx.Client`` carries one in its default headers. httpx itself drops the
    header when a redirect leaves the origin.

    Example:
        >>> auth = OriginAuth("k3y", "https://hub.oxen.ai/api")
        >>> req = next(auth.auth_flow(httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue")))
        >>> req.headers["Authorization"] == "Bearer k3y"
        True
        >>> "Authorization" in next(auth.auth_flow(httpx.Request("GET", "https://cdn.example.com/v.mp4"))).headers
        False
        >>> auth
        OriginAuth(origin='https://hub.oxen.ai', api_key='***')
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, api_key: str, base_url: str) -> None:
        self.__api_key = api_key
        self._origin = origin(base_url)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer header to requests for the API origin; strip it from all others."""
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self.__api_key}"
        else:
            request.headers.pop("Authorization", None)
        yield request

    def is_api_origin(self, url: httpx.URL | str) -> bool:
        """True when ``url`` is on the API's own origin (and so gets the key)."""
        return origin(url) == self._origin

    def redact(self, text: str) -> str:
        """Replace every occurrence of the key in ``text`` (e.g. an echoed error message).

        Keys shorter than 8 characters (test keys) are left alone: replacing them would garble text.
        """
        key = self.__api_key
        return text.replace(key, REDACTED) if len(key) >= 8 else text

    def __repr__(self) -> str:
        scheme, host, port = self._origin
        default = DEFAULT_PORTS.get(scheme)
        where = f"{scheme}://{host}" + ("" if port == default else f":{port}")
        return f"OriginAuth(origin={where!r}, api_key={REDACTED!r})"
