-- The key registry: every signing key rotor has made or adopted, where its private half is kept,
-- and where it stands in its lifecycle. Rows are never deleted: a destroyed key's public key stays
-- archived (until retention_until) so historical manifests remain verifiable.
CREATE TABLE signing_keys (
  key_id text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{64}$'),
  identity text NOT NULL CHECK (identity <> ''),
  public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
  algorithm text NOT NULL DEFAULT 'Ed25519' CHECK (algorithm = 'Ed25519'),
  custodian text NOT NULL CHECK (custodian IN ('pkcs11', 'software')),
  handle text NOT NULL CHECK (handle <> ''),
  state text NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired', 'destroyed', 'quarantined')),
  -- What the custodian's describe() said when the key was registered (for the preflight and audit).
  description jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- When the key last entered each state.
  activated_at timestamptz,
  retiring_at timestamptz,
  retired_at timestamptz,
  destroyed_at timestamptz,
  quarantined_at timestamptz,
  retention_until timestamptz,
  -- key_id is derived from the public key, never chosen.
  CONSTRAINT signing_keys_key_id_is_hash CHECK (key_id = encode(sha256(public_key), 'hex'))
);

-- A signing identity signs with one key at a time.
CREATE UNIQUE INDEX signing_keys_one_active_per_identity ON signing_keys (identity) WHERE state = 'active';
CREATE INDEX signing_keys_identity_created ON signing_keys (identity, created_at);

-- Every state change, in order, for the audit trail (the row above keeps only the latest of each).
CREATE TABLE signing_key_transitions (
  id bigserial PRIMARY KEY,
  key_id text NOT NULL REFERENCES signing_keys (key_id),
  from_state text,
  to_state text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signing_key_transitions_key ON signing_key_transitions (key_id, id);
