-- Channel monitoring (issue 18): what the last test of a channel found (empty: it passed;
-- test_time and response_time already say when and how fast), and the state of each key of
-- a multi-key channel, by key fingerprint (unigate.keys.key_fingerprint, never the key):
-- {"<fingerprint>": {"status": 3, "reason": "...", "time": <unix s>}} for keys taken out
-- of rotation; a key absent from it is enabled.
ALTER TABLE channels ADD COLUMN test_error TEXT NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN key_status JSONB NOT NULL DEFAULT '{}'::jsonb;
-- Low-quota reminders (One API's QuotaRemindThreshold): when a user was told their balance
-- fell below the threshold (0: not since it was last above), so each fall is told once.
ALTER TABLE users ADD COLUMN quota_reminded_at BIGINT NOT NULL DEFAULT 0;
