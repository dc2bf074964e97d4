-- unigate schema v1. Column names follow One API where it has them.

CREATE TABLE users (
    id                    BIGSERIAL PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT FALSE,
    display_name          TEXT NOT NULL DEFAULT '',
    role                  SMALLINT NOT NULL DEFAULT 1,      -- 1 user, 10 admin, 100 root
    status                SMALLINT NOT NULL DEFAULT 1,      -- 1 enabled, 2 disabled
    email                 TEXT NOT NULL DEFAULT '',
    "group"               TEXT NOT NULL DEFAULT 'default',
    quota                 BIGINT NOT NULL DEFAULT 0,        -- remaining quota units
    used_quota            BIGINT NOT NULL DEFAULT 0,
    request_count         BIGINT NOT NULL DEFAULT 0,
    access_token_hash     BYTEA UNIQUE,
    created_time          BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
    updated_time          BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);

CREATE TABLE tokens (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash         BYTEA NOT NULL UNIQUE,                 -- sha256 of the full key
    key_prefix       TEXT NOT NULL,                         -- display form only
    name             TEXT NOT NULL DEFAULT '',
    status           SMALLINT NOT NULL DEFAULT 1,           -- 1 enabled, 2 disabled, 3 expired, 4 exhausted
    created_time     BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
    accessed_time    BIGINT NOT NULL DEFAULT 0,
    expired_time     BIGINT NOT NULL DEFAULT -1,            -- unix seconds, -1 = never
    remain_quota     BIGINT NOT NULL DEFAULT 0,
    unlimited_quota  BOOLEAN NOT NULL DEFAULT FALSE,
    used_quota       BIGINT NOT NULL DEFAULT 0,
    models           TEXT NOT NULL DEFAULT '',              -- comma-separated allowlist, '' = all
    subnet           TEXT NOT NULL DEFAULT '',              -- comma-separated CIDRs, '' = any
    rpm_limit        INTEGER NOT NULL DEFAULT 0,
    tpm_limit        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user_id ON tokens(user_id);

CREATE TABLE channels (
    id              BIGSERIAL PRIMARY KEY,
    type            INTEGER NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    key_enc         BYTEA NOT NULL,                         -- AES-GCM, newline-separated keys
    base_url        TEXT NOT NULL DEFAULT '',
    models          TEXT NOT NULL DEFAULT '',               -- comma-separated
    model_mapping   JSONB NOT NULL DEFAULT '{}'::jsonb,     -- requested -> upstream model
    "group"         TEXT NOT NULL DEFAULT 'default',        -- comma-separated groups served
    priority        BIGINT NOT NULL DEFAULT 0,
    weight          INTEGER NOT NULL DEFAULT 1,
    status          SMALLINT NOT NULL DEFAULT 1,            -- 1 enabled, 2 manual off, 3 auto off
    status_reason   TEXT NOT NULL DEFAULT '',
    status_time     BIGINT NOT NULL DEFAULT 0,
    config          JSONB NOT NULL DEFAULT '{}'::jsonb,
    system_prompt   TEXT NOT NULL DEFAULT '',
    timeout_ms      INTEGER NOT NULL DEFAULT 0,             -- 0 = service default
    headers         JSONB NOT NULL DEFAULT '{}'::jsonb,
    used_quota      BIGINT NOT NULL DEFAULT 0,
    response_time   INTEGER NOT NULL DEFAULT 0,             -- ms, last test
    test_time       BIGINT NOT NULL DEFAULT 0,
    balance         DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_time    BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
    config_version  BIGINT NOT NULL DEFAULT 1               -- bumped on every change
);

-- Which channel may serve which (group, model); derived from channels, as in One API.
CREATE TABLE abilities (
    "group"     TEXT NOT NULL,
    model       TEXT NOT NULL,
    channel_id  BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    priority    BIGINT NOT NULL DEFAULT 0,
    weight      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY ("group", model, channel_id)
);
CREATE INDEX abilities_channel_id ON abilities(channel_id);

CREATE TABLE options (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- The ledger. One row per request (request_id unique) plus top-up/manage/system rows.
CREATE TABLE logs (
    id                 BIGSERIAL PRIMARY KEY,
    request_id         TEXT UNIQUE,                         -- NULL for non-request rows
    type               SMALLINT NOT NULL,                   -- 1 top-up, 2 consume, 3 manage, 4 system, 5 test
    created_at         BIGINT NOT NULL,                     -- unix seconds
    user_id            BIGINT NOT NULL DEFAULT 0,
    username           TEXT NOT NULL DEFAULT '',
    token_id           BIGINT NOT NULL DEFAULT 0,
    token_name         TEXT NOT NULL DEFAULT '',
    channel_id         BIGINT NOT NULL DEFAULT 0,
    channels_tried     BIGINT[] NOT NULL DEFAULT '{}',
    model_name         TEXT NOT NULL DEFAULT '',
    upstream_model     TEXT NOT NULL DEFAULT '',
    endpoint           TEXT NOT NULL DEFAULT '',
    "group"            TEXT NOT NULL DEFAULT '',
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_tokens      BIGINT NOT NULL DEFAULT 0,
    estimated          BOOLEAN NOT NULL DEFAULT FALSE,      -- tokens counted locally
    quota              BIGINT NOT NULL DEFAULT 0,
    model_ratio        DOUBLE PRECISION NOT NULL DEFAULT 0, -- prices in force for this row
    completion_ratio   DOUBLE PRECISION NOT NULL DEFAULT 0,
    group_ratio        DOUBLE PRECISION NOT NULL DEFAULT 0,
    cached_ratio       DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_ms         INTEGER NOT NULL DEFAULT 0,
    first_token_ms     INTEGER NOT NULL DEFAULT 0,
    is_stream          BOOLEAN NOT NULL DEFAULT FALSE,
    status_code        INTEGER NOT NULL DEFAULT 0,
    error_code         TEXT NOT NULL DEFAULT '',
    client_ip          TEXT NOT NULL DEFAULT '',
    reservation_id     TEXT NOT NULL DEFAULT '',
    reserved_quota     BIGINT NOT NULL DEFAULT 0,
    content            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logs_created_at ON logs(created_at);
CREATE INDEX logs_user_created ON logs(user_id, created_at);
CREATE INDEX logs_token_created ON logs(token_id, created_at);

-- Events that could not be applied; never dropped silently, replayable.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    subject     TEXT NOT NULL,
    data        BYTEA NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
    replayed_at BIGINT
);

CREATE TABLE redemptions (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL DEFAULT 0,               -- creator
    key            TEXT NOT NULL UNIQUE,
    status         SMALLINT NOT NULL DEFAULT 1,             -- 1 unused, 2 disabled, 3 used
    name           TEXT NOT NULL DEFAULT '',
    quota          BIGINT NOT NULL DEFAULT 0,
    created_time   BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
    redeemed_time  BIGINT NOT NULL DEFAULT 0,
    redeemed_by    BIGINT NOT NULL DEFAULT 0
);
