-- Self-service accounts (One API's registration and invitations): each user's invitation
-- code (`aff_code`, made at registration or at the first GET /api/user/aff) and who invited
-- them (`inviter_id`, 0 for nobody), and email addresses unique regardless of case, so that
-- a verified address names one account (password reset mails it).
ALTER TABLE users ADD COLUMN IF NOT EXISTS aff_code TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS inviter_id BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS users_aff_code ON users (aff_code) WHERE aff_code IS NOT NULL;
-- A database whose users already share an address keeps working (auth checks every new
-- address itself) and gets the index once an operator has told them apart and re-runs this.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM users WHERE email <> '' GROUP BY lower(email) HAVING count(*) > 1
    ) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower ON users (lower(email))
            WHERE email <> '';
    ELSE
        RAISE WARNING 'users_email_lower not created: some users share an email address';
    END IF;
END
$$;
