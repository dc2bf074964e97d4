-- Content logging (off by default; on per key or per group through the ContentLogTokens and
-- ContentLogGroups options): the bodies of a request and of its answer, secrets redacted and
-- each capped (ContentLogMaxBytes), kept apart from the ledger so that the ledger's rows and
-- its exactly-once statement never wait on, or grow with, what clients sent. Rows older than
-- ContentLogRetentionDays are deleted by billing.
CREATE TABLE request_contents (
    request_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL DEFAULT 0,
    token_id BIGINT NOT NULL DEFAULT 0,
    request_body TEXT NOT NULL DEFAULT '',
    response_body TEXT NOT NULL DEFAULT '',
    truncated BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX request_contents_created_at ON request_contents (created_at);
