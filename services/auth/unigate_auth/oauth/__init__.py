"""External logins (OAuth 2.0 / OIDC): GitHub, Lark/Feishu, a generic OIDC provider and
One API's WeChat server. ``flows`` keeps each pending flow (state, PKCE verifier, nonce) in
Redis, single-use; one module per provider turns a code into the person's stable id there;
``admin/oauth_rpcs.py`` logs in or binds with it."""
