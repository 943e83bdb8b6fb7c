"""The ``OxenCredentials`` Prefect block: the Oxen.ai API key (a secret) and the API base URL.

Register the block type once per Prefect server, the way Prefect integrations do::

    prefect block register -m seedance_prefect
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr

from .limits import DEFAULT_BASE_URL
from .settings import API_KEY_ENV, get_settings

if TYPE_CHECKING:
    from .client._client import AsyncSeedanceClient, SeedanceClient
    from .client.completion import CompletionHub

__all__ = ["OxenCredentials", "resolve_credentials"]


class OxenCredentials(CredentialsBlock):
    """Credentials for the Oxen.ai inference API.

    The API key is kept as a secret: it is masked in the Prefect UI, in logs and in cache keys, and
    unwrapped only when a client is built.

    Attributes:
        api_key: The Oxen.ai API key (account settings, https://oxen.ai/settings/profile).
        base_url: Base URL of the API, ``https://hub.oxen.ai/api`` unless you use the emulator.
        namespace: Default namespace (user or organisation) that results are saved in and billed to.
        repository: Oxen repository ``namespace/name`` used to host local reference files.

    Example:
        Save the block once, then load it in any flow:
        ```python
        from seedance_prefect import OxenCredentials

        OxenCredentials(api_key="YOUR_API_KEY").save("oxen", overwrite=True)
        oxen_credentials = OxenCredentials.load("BLOCK_NAME")
        with oxen_credentials.get_client() as client:
            print(client.model_info()["id"])
        ```
    """

    _block_type_name: ClassVar[str] = "Oxen Credentials"
    _block_type_slug: ClassVar[str] = "oxen-credentials"
    _logo_url: ClassVar[str] = "https://avatars.githubusercontent.com/u/98217562?s=200&v=4"
    _documentation_url: ClassVar[str] = "https://docs.oxen.ai/inference-api/overview"
    _description: ClassVar[str] = "Oxen.ai API key and base URL for Seedance 2.0 video generation."

    api_key: SecretStr = Field(
        default=..., title="API Key", description="The Oxen.ai API key, sent as a bearer token."
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description="Base URL of the Oxen.ai API (the emulator prints its own).",
    )
    namespace: str | None = Field(
        default=None,
        description="Namespace (user or organisation) that results are saved in and billed to.",
    )
    repository: str | None = Field(
        default=None,
        description="Oxen repository, as namespace/name, used to host local reference files.",
    )
    max_download_bytes: int = Field(
        default=2 * 1024**3,
        gt=0,
        title="Largest result accepted (bytes)",
        description="A result video over this size is refused, never delivered (default 2 GiB).",
    )

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"download_max_bytes": self.max_download_bytes, **kwargs}

    def get_client(self, **kwargs: Any) -> SeedanceClient:
        """Return a new synchronous client for this account.

        Args:
            **kwargs: Passed to :class:`~seedance_prefect.client.SeedanceClient`.

        Returns:
            A client to use as a context manager.
        """
        from .client._client import SeedanceClient

        return SeedanceClient(
            self.api_key.get_secret_value(), base_url=self.base_url, **self._client_options(kwargs)
        )

    def get_async_client(self, **kwargs: Any) -> AsyncSeedanceClient:
        """Return a new asynchronous client for this account.

        Args:
            **kwargs: Passed to :class:`~seedance_prefect.client.AsyncSeedanceClient`.

        Returns:
            A client to use as an async context manager.
        """
        from .client._client import AsyncSeedanceClient

        return AsyncSeedanceClient(
            self.api_key.get_secret_value(), base_url=self.base_url, **self._client_options(kwargs)
        )

    def completion_hub(self) -> CompletionHub:
        """Return the account's completion-event stream, shared by every task of the process.

        There is one per account (base URL and API key): the waits of a process's tasks all
        listen on it, and the enqueue tasks bring it up before their POST, since the service does
        not replay completion events.

        Returns:
            The account's :class:`~seedance_prefect.client.completion.CompletionHub`.

        Example:
            ```python
            oxen_credentials = OxenCredentials.load("BLOCK_NAME")
            oxen_credentials.completion_hub().ensure_connected(10.0)  # before a POST
            ```
        """
        from .client.completion import CompletionHub

        return CompletionHub.for_account(self.base_url, self.api_key.get_secret_value(), self.get_client)


def resolve_credentials(credentials: OxenCredentials | str | None = None) -> OxenCredentials:
    """Turn a block, a saved block's name, or nothing into an ``OxenCredentials`` block.

    With nothing given, the block is built from ``OXEN_API_KEY`` and ``OXEN_BASE_URL``.

    Args:
        credentials: A block, the name of a saved ``oxen-credentials`` block, or None.

    Returns:
        The credentials to use.

    Raises:
        AuthenticationError: Nothing given and ``OXEN_API_KEY`` is not set.

    Example:
        ```python
        creds = resolve_credentials("oxen")   # a saved block
        creds = resolve_credentials()         # from OXEN_API_KEY / OXEN_BASE_URL
        ```
    """
    if isinstance(credentials, OxenCredentials):
        return credentials
    if isinstance(credentials, str) and credentials:
        return OxenCredentials.load(credentials)  # type: ignore[return-value]
    settings = get_settings()
    key = settings.api_key
    if not key:
        from .errors import AuthenticationError

        raise AuthenticationError(
            401,
            "unauthenticated",
            f"No API key: set {API_KEY_ENV}, or pass an OxenCredentials block or its saved name",
        )
    return OxenCredentials(api_key=SecretStr(key), base_url=settings.base_url)
