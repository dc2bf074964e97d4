-- Calls billed in a unit other than tokens (seconds of audio, characters of speech input,
-- images, Cohere search units): the unit and how many, as the provider billed them (or as
-- read from the upload when it said nothing). Token-priced rows, and rows from before: '' / 0.
ALTER TABLE logs ADD COLUMN unit TEXT NOT NULL DEFAULT '';
ALTER TABLE logs ADD COLUMN quantity BIGINT NOT NULL DEFAULT 0;
