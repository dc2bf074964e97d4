"""Strict simulators of the identity providers unigate's external logins talk to: GitHub's
OAuth web flow (``github``), an OpenID Connect provider (``oidc``), Lark/Feishu's web-app
login (``lark``) and One API's WeChat server (``wechat``). Each refuses what the real one
refuses: an unregistered redirect URI, a wrong client secret, a code used twice or too old,
a PKCE verifier that does not match, an unknown or expired access token.

``authorize`` endpoints do not ask anyone: they log in ``app.state.person`` (set by a test)
and redirect at once, as a provider does for a person who already consented.
"""

from __future__ import annotations

from typing import Any

import orjson


def identity_app(provider: str, clients: list[str], person: str, token: str) -> Any:
    """The app ``unigate-sim <provider>`` serves: clients as ``ID|SECRET|REDIRECT_URI``,
    ``person`` the JSON of who logs in at its authorize page, ``token`` the WeChat server's."""
    from unigate_sim.identity.github import create_github_app
    from unigate_sim.identity.lark import create_lark_app
    from unigate_sim.identity.oidc import create_oidc_app
    from unigate_sim.identity.wechat import create_wechat_app

    if provider == "wechat-server":
        return create_wechat_app(token)
    parsed = [c.split("|", 2) for c in clients]
    if any(len(p) != 3 for p in parsed):
        raise SystemExit("a client is ID|SECRET|REDIRECT_URI")
    app: Any
    if provider == "github-oauth":
        app = create_github_app({i: (s, r) for i, s, r in parsed})
    elif provider == "lark-oauth":
        app = create_lark_app({i: (s, [r]) for i, s, r in parsed})
    else:
        app = create_oidc_app({i: (s, [r]) for i, s, r in parsed})
    app.state.person = orjson.loads(person) if person else None
    return app
