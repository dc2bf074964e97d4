-- Usernames are unique regardless of case ("Root" and "root" are one name), so that no one
-- can register a look-alike of an existing account. Auth checks this before every write;
-- the index makes it hold under concurrent registrations too. A database that already
-- holds names differing only by case keeps working (auth's check still refuses new ones)
-- and gets the index once an operator has renamed them and re-runs this statement.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM users GROUP BY lower(username) HAVING count(*) > 1
    ) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower ON users (lower(username));
    ELSE
        RAISE WARNING 'users_username_lower not created: some usernames differ only by case';
    END IF;
END
$$;
