-- External identities a user may log in with (One API's github_id, lark_id, wechat_id,
-- oidc_id): the provider's stable id of the person (GitHub's numeric user id, Lark's open_id,
-- the WeChat server's openid, the OIDC provider's `sub`). NULL when not bound. Each is
-- unique: one external identity opens one account, so a second binding of it is refused
-- even under concurrent requests.
ALTER TABLE users ADD COLUMN IF NOT EXISTS github_id TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS lark_id TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS wechat_id TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS oidc_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS users_github_id ON users (github_id) WHERE github_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS users_lark_id ON users (lark_id) WHERE lark_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS users_wechat_id ON users (wechat_id) WHERE wechat_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS users_oidc_id ON users (oidc_id) WHERE oidc_id IS NOT NULL;
