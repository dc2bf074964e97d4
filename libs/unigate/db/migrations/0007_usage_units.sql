-- Calls billed in a unit other than tokens (seconds of audio, characters of speech input,
-- images, Cohere search units): the unit and how many, as the provider billed them (or as
-- read from the upload when it said nothing), and the USD per unit in force (an exact
-- fraction, "1/10000"), as the row keeps the ratios of a token-priced call: quota =
-- ceil(quantity x unit_price x 500,000 x group_ratio). Token-priced rows, and rows from
-- before: '', 0, ''.
ALTER TABLE logs ADD COLUMN unit TEXT NOT NULL DEFAULT '';
ALTER TABLE logs ADD COLUMN quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE logs ADD COLUMN unit_price TEXT NOT NULL DEFAULT '';
