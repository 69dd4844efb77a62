-- depends: 0008.ledger-balance-reference
-- An API key records the id of the configured secret its keys were derived from, so that the
-- secret can be rotated (chalicelib/identity/key_ring.py): new keys are written under the
-- current secret, and each row is read with the secret of its own id.
--
-- key_id: the `API_KEY_ENCRYPTION_KEY_ID` current when the key was created. NULL for keys
--   created before key ids: their secret is encrypted and their passphrase MAC keyed with the
--   raw secret, the one configured then, which takes the id '1' (the default id).
ALTER TABLE api_keys ADD COLUMN key_id text;
