"""Strict simulators of the identity providers unigate's external logins talk to: GitHub's
OAuth web flow (``github``), an OpenID Connect provider (``oidc``), Lark/Feishu's web-app
login (``lark``) and One API's WeChat server (``wechat``). Each refuses what the real one
refuses: an unregistered redirect URI, a wrong client secret, a code used twice or too old,
a PKCE verifier that does not match, an unknown or expired access token.

``authorize`` endpoints do not ask anyone: they log in ``app.state.person`` (set by a test)
and redirect at once, as a provider does for a person who already consented.
"""
