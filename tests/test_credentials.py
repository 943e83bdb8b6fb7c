"""OxenCredentials: Prefect's block standards, secret handling, environment fallback."""

from __future__ import annotations

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from seedance_prefect.credentials import OxenCredentials, resolve_credentials
from seedance_prefect.errors import AuthenticationError

KEY = "sk-unit-0123456789abcdef"


class TestOxenCredentialsStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[OxenCredentials]:
        return OxenCredentials

    def test_has_a_valid_image(self, block: type[OxenCredentials]) -> None:  # offline variant
        """Prefect's own check downloads the logo; here we check it is an https URL."""
        assert str(block._logo_url).startswith("https://")


def test_secret_is_masked_everywhere_but_the_client():
    creds = OxenCredentials(api_key=KEY, base_url="http://127.0.0.1:1/api")
    assert KEY not in repr(creds) and KEY not in str(creds)
    assert KEY not in creds.model_dump_json()
    with creds.get_client() as client:
        assert KEY not in repr(client)
        assert client.base_url == "http://127.0.0.1:1/api"


def test_resolve_from_environment(monkeypatch):
    monkeypatch.setenv("OXEN_API_KEY", KEY)
    monkeypatch.setenv("OXEN_BASE_URL", "http://127.0.0.1:2/api")
    creds = resolve_credentials()
    assert creds.api_key.get_secret_value() == KEY and creds.base_url == "http://127.0.0.1:2/api"
    assert resolve_credentials(creds) is creds


def test_resolve_without_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OXEN_API_KEY"):
        resolve_credentials()


def test_lazy_export_and_registration_discovery():
    import inspect

    import seedance_prefect

    members = dict(inspect.getmembers(seedance_prefect))
    assert members["OxenCredentials"] is OxenCredentials


def test_one_completion_stream_per_account_and_no_key_in_it():
    first = OxenCredentials(api_key="k3y-one", base_url="https://hub.test/api")
    same = OxenCredentials(api_key="k3y-one", base_url="https://hub.test/api")
    other = OxenCredentials(api_key="k3y-two", base_url="https://hub.test/api")

    hub = first.completion_hub()
    assert hub is same.completion_hub()  # every task of the process shares the account's stream
    assert hub is not other.completion_hub()
    assert hub._thread is None  # nothing connects until a task needs it
    assert "k3y-one" not in repr(vars(hub))
