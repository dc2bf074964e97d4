-- Management API: when a channel's provider balance was last read (One API's
-- balance_updated_time). Access tokens (users.access_token_hash) and options already exist;
-- sessions and login throttling live in Redis.
ALTER TABLE channels ADD COLUMN balance_updated_time BIGINT NOT NULL DEFAULT 0;
