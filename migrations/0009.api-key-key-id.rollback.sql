-- Without key ids the code reads every key with the raw secret, which cannot read the keys
-- written under a derived one: they are revoked rather than left listed as live but refused.
UPDATE api_keys SET revoked_at = now() WHERE key_id IS NOT NULL AND revoked_at IS NULL;
ALTER TABLE api_keys DROP COLUMN key_id;
