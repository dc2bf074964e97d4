"""The provider catalog: generated from the relay's declarations, current, and enough for a
new provider to reach the console, auth's routing, balances and telemetry with one new folder
and one registry line (the worked example of docs/architecture.md, "Adding a provider")."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from starlette.testclient import TestClient

from unigate import channel_types
from unigate.channel_types import CATALOG_PATH, channel_type, install_catalog, routed_type
from unigate.settings import ANY_FAMILY, relay_for
from unigate.telemetry import genai_system
from unigate_auth.admin.balances import BalanceUnavailable, read_balance
from unigate_gateway.app import create_app
from unigate_gateway.settings import GatewaySettings
from unigate_relay import providers
from unigate_relay.providers import catalog
from unigate_relay.providers.declaration import ChannelDeclaration, ProviderPackage
from unigate_relay.providers.openai import OpenAIProvider

ACME_TYPE = 901


def test_the_checked_in_catalog_is_current() -> None:
    assert CATALOG_PATH.read_bytes() == catalog.render(providers.PACKAGES), "run make providers"


def test_every_registered_family_and_type_is_in_the_catalog() -> None:
    for package in providers.PACKAGES:
        for declared in package.channels:
            ct = channel_type(declared.id)
            assert ct is not None and ct.family == package.family, declared.id
            assert ct.base_url == declared.base_url and ct.gen_ai_system == declared.system
    assert routed_type(17, "native") == 1017 and routed_type(17, None) == 17


def test_the_generator_refuses_declarations_that_contradict_the_adapter() -> None:
    class Acme(OpenAIProvider):
        family = "acme"
        channel_types = (ACME_TYPE,)

    with pytest.raises(catalog.CatalogError, match="adapter serves"):
        catalog.build([ProviderPackage(Acme, (ChannelDeclaration(ACME_TYPE + 1, "Acme"),))])
    twice = ProviderPackage(Acme, (ChannelDeclaration(ACME_TYPE, "Acme"),))
    with pytest.raises(catalog.CatalogError, match="declared twice"):
        catalog.build([twice, twice])
    orphan = ChannelDeclaration(ACME_TYPE, "Acme", variant_of=(ACME_TYPE + 1, "native"))
    with pytest.raises(catalog.CatalogError, match="variant of undeclared"):
        catalog.build([ProviderPackage(Acme, (orphan,))])


# The worked example's folder, as a provider author writes it (base URL: the test's server).
ACME_FILES = {
    "__init__.py": '''
        """Acme (OpenAI-compatible): served as the OpenAI protocol by its own family."""
        from acme_provider.adapter import AcmeProvider
        from acme_provider.declaration import CHANNELS

        __all__ = ["CHANNELS", "AcmeProvider"]
    ''',
    "adapter.py": """
        from typing import ClassVar

        from unigate_relay.providers.openai import OpenAIProvider


        class AcmeProvider(OpenAIProvider):
            family: ClassVar[str] = "acme"
            channel_types: ClassVar[tuple[int, ...]] = (901,)
    """,
    "declaration.py": """
        from unigate_relay.providers.declaration import BalanceApi, ChannelDeclaration

        CHANNELS = (
            ChannelDeclaration(
                901,
                "Acme Cloud",
                base_url="{base_url}",
                key_hint="acme-...",
                key_pattern=r"^acme-",
                balance=BalanceApi("moonshot", "/users/me/balance"),
                gen_ai_system="acme_cloud",
                models=("acme-1", "acme-1-mini"),
            ),
        )
    """,
}


@pytest.fixture
def restored_catalog() -> Iterator[None]:
    yield
    install_catalog()


async def test_a_new_provider_is_one_folder_and_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_catalog: None
) -> None:
    # Acme's balance API, answering in Moonshot's shape for the key it was given.
    async def balance(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer acme-secret":
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"data": {"available_balance": 12.5}})

    app = web.Application()
    app.router.add_get("/v1/users/me/balance", balance)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        # One new folder ...
        folder = tmp_path / "acme_provider"
        folder.mkdir()
        for name, text in ACME_FILES.items():
            text = text.replace("{base_url}", f"http://127.0.0.1:{port}/v1")
            (folder / name).write_text(textwrap.dedent(text).lstrip())
        monkeypatch.syspath_prepend(str(tmp_path))
        acme = importlib.import_module("acme_provider")
        # ... one registry line ...
        line = ProviderPackage(acme.AcmeProvider, acme.CHANNELS)
        monkeypatch.setattr(providers, "PACKAGES", (*providers.PACKAGES, line))
        # ... and the regenerated catalog.
        out = tmp_path / "provider_catalog.json"
        catalog.write(out)
        assert channel_type(ACME_TYPE) is None
        install_catalog(out)

        # The console's channel form offers it, with its key format and default base URL.
        types = TestClient(create_app(GatewaySettings())).get("/console/channel-types.json")
        form = {t["id"]: t for t in types.json()}[ACME_TYPE]
        assert form["name"] == "Acme Cloud" and form["family"] == "acme"
        assert form["key_hint"] == "acme-..." and form["key_pattern"] == "^acme-"
        assert form["base_url"] == f"http://127.0.0.1:{port}/v1"

        # Auth routes its channels to the family's relay (an unknown type is skipped).
        ct = channel_type(ACME_TYPE)
        assert ct is not None and ct.family == "acme" and ct.models == ("acme-1", "acme-1-mini")
        assert routed_type(ACME_TYPE, None) == ACME_TYPE
        relays = {"openai": "relay-openai:50061", ANY_FAMILY: "relay-all:50061"}
        assert relay_for(relays, ct.family) == "relay-all:50061"
        assert ACME_TYPE in channel_types.balance_types()

        # Balances: read from the declared API at the declared default base URL.
        assert await read_balance(ACME_TYPE, "", "acme-secret") == 12.5
        with pytest.raises(BalanceUnavailable, match="HTTP 401"):
            await read_balance(ACME_TYPE, "", "wrong")

        # Telemetry names it by its declared gen_ai.system.
        assert genai_system(ACME_TYPE) == "acme_cloud"
    finally:
        await runner.cleanup()
    # Every provider registered before is still there, unchanged.
    assert {t for t in channel_types.CHANNEL_TYPES if t != ACME_TYPE} == {
        c.id for p in providers.PACKAGES[:-1] for c in p.channels
    }
