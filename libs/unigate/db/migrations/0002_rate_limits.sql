-- Per-user default rate limits (0 = none); keys have their own rpm_limit / tpm_limit.
ALTER TABLE users ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0;
