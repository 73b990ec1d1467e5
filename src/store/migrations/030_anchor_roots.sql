-- Signed trust anchors (issue 12). Keys now have a role: manifest signing keys, anchor root keys
-- (sign every published anchor, TUF's root role) and the identity's revocation key (signs CRL
-- records, ADR-0007). Root and revocation keys live in the same custodians and registry as
-- signing keys but never sign manifests.
ALTER TABLE signing_keys
  ADD COLUMN role text NOT NULL DEFAULT 'signing' CHECK (role IN ('signing', 'root', 'revocation'));

-- One active signing key per identity (as before), one active revocation key; root keys come in sets.
DROP INDEX signing_keys_one_active_per_identity;
CREATE UNIQUE INDEX signing_keys_one_active_per_identity ON signing_keys (identity)
  WHERE state = 'active' AND role = 'signing';
CREATE UNIQUE INDEX signing_keys_one_revocation_key_per_identity ON signing_keys (identity)
  WHERE state = 'active' AND role = 'revocation';

-- Each identity's root key sets, in order: set N+1 is introduced by an anchor that a threshold
-- of set N and of set N+1 sign. Rows never change.
CREATE TABLE anchor_roots (
  identity text NOT NULL CHECK (identity <> ''),
  root_version integer NOT NULL CHECK (root_version > 0),
  threshold integer NOT NULL CHECK (threshold > 0),
  key_ids text[] NOT NULL CHECK (cardinality(key_ids) >= threshold),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (identity, root_version)
);
CREATE TRIGGER anchor_roots_append_only BEFORE UPDATE OR DELETE ON anchor_roots
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();

-- The signed form of each anchor version: the JWS exactly as served at trust-anchor.jws, its
-- SHA-256 (what verifiers report at check-in), its expiry and the root set that signed it.
-- NULL for versions published before signing existed, or by code paths without a root set.
ALTER TABLE trust_anchors
  ADD COLUMN jws text,
  ADD COLUMN jws_sha256 text CHECK (jws_sha256 ~ '^[0-9a-f]{64}$'),
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN root_version integer;

-- `rotor serve` keeps the anchor in memory and reloads it when a new version commits.
CREATE FUNCTION trust_anchors_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rotor_trust_anchor', NEW.identity);
  RETURN NULL;
END $$;
CREATE TRIGGER trust_anchors_notify AFTER INSERT ON trust_anchors
  FOR EACH ROW EXECUTE FUNCTION trust_anchors_notify();
