"""An auth and a gateway of the session's stack pointed at the identity-provider
simulators (GitHub and Lark live at fixed hosts, set by auth's OAUTH_* settings), and the
simulators themselves; shared by the API tests and the browser test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import ExtraGateway, ExtraProcess, ThreadedServer
from unigate_cli.devstack import Stack, free_port
from unigate_sim.identity.github import create_github_app
from unigate_sim.identity.lark import create_lark_app
from unigate_sim.identity.oidc import create_oidc_app
from unigate_sim.identity.wechat import create_wechat_app

GITHUB_ID, GITHUB_SECRET = "Iv1.simclient", "gh-secret-" + "s" * 30
LARK_ID, LARK_SECRET = "cli_simapp", "lark-secret-" + "s" * 20
OIDC_ID, OIDC_SECRET = "unigate-sim", "oidc-secret-" + "s" * 20
WECHAT_TOKEN = "wechat-server-token-" + "t" * 12
RATE_LIMIT = 100


class ExtraAuth(ExtraProcess):
    """Another auth process of the same stack (database, Redis, NATS), with its own env."""

    def __init__(self, stack: Stack, **env: str) -> None:
        self.port = free_port()
        ops = free_port()
        own = {
            "AUTH_LISTEN": f"127.0.0.1:{self.port}",
            "AUTH_OPS_PORT": str(ops),
            "CHANNEL_TEST_FREQUENCY": "0",
        }
        ready = f"http://127.0.0.1:{ops}/readyz"
        super().__init__(stack, "auth", self.port, {**own, **env}, ready, 30)


@dataclass
class Providers:
    github: ThreadedServer
    lark: ThreadedServer
    oidc: ThreadedServer
    wechat: ThreadedServer
    gateway: ExtraGateway

    @property
    def url(self) -> str:
        return self.gateway.url

    def options(self) -> dict[str, str]:
        return {
            "GitHubOAuthEnabled": "true",
            "GitHubClientId": GITHUB_ID,
            "GitHubClientSecret": GITHUB_SECRET,
            "LarkClientId": LARK_ID,
            "LarkClientSecret": LARK_SECRET,
            "OidcEnabled": "true",
            "OidcClientId": OIDC_ID,
            "OidcClientSecret": OIDC_SECRET,
            "OidcWellKnown": f"{self.oidc.url}/.well-known/openid-configuration",
            "WeChatAuthEnabled": "true",
            "WeChatServerAddress": self.wechat.url,
            "WeChatServerToken": WECHAT_TOKEN,
            "WeChatAccountQRCodeImageURL": f"{self.wechat.url}/qrcode.png",
        }


@pytest.fixture(scope="module")
def providers(stack: Stack) -> Iterator[Providers]:
    servers = [
        ThreadedServer(create_github_app({})),
        ThreadedServer(create_lark_app({})),
        ThreadedServer(create_oidc_app({})),
        ThreadedServer(create_wechat_app(WECHAT_TOKEN)),
    ]
    for server in servers:
        server.start()
    github, lark, oidc, wechat = servers
    auth = ExtraAuth(
        stack,
        OAUTH_GITHUB_URL=github.url,
        OAUTH_GITHUB_API_URL=github.url,
        OAUTH_LARK_URL=lark.url,
        OAUTH_LARK_ACCOUNTS_URL=lark.url,
        # Room for every flow these tests open from 127.0.0.1 within a minute; the limit's
        # own test comes from another (forwarded) address.
        OAUTH_MAX_PER_IP_PER_MINUTE=str(RATE_LIMIT),
    )
    gateway = ExtraGateway(stack, AUTH_ADDR=f"127.0.0.1:{auth.port}")
    # Each app is registered with the gateway's callback, as an operator registers it.
    app = lambda s: s.server.config.app  # noqa: E731
    app(github).state.clients[GITHUB_ID] = (GITHUB_SECRET, f"{gateway.url}/oauth/github")
    app(lark).state.clients[LARK_ID] = (LARK_SECRET, [f"{gateway.url}/oauth/lark"])
    app(oidc).state.clients[OIDC_ID] = (OIDC_SECRET, [f"{gateway.url}/oauth/oidc"])
    try:
        yield Providers(github, lark, oidc, wechat, gateway)
    finally:
        gateway.stop()
        auth.stop()
        for server in servers:
            server.stop()


def callback_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
