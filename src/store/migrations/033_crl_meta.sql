-- The CRL's signed header (issue 12, point 2): `GET /.well-known/agent-manifest/revocation.meta.jws`,
-- a JWS by the identity's revocation key (ADR-0007's revoking authority) over the record count, the
-- SHA-256 of the full CRL body as served, the CRL head sequence number it describes (`seq`, the
-- CRL-Head of that body, migration 080) and `next_update`, so a verifier detects a truncated or
-- altered CRL and one frozen by an attacker replaying an old body with its old header.
--
-- The served body is a function of the head (080: every change draws a sequence number under the
-- crl_state lock), so one row per (identity, seq) names exactly one body. The worker signs a row
-- after each change and re-signs the newest one before its next_update (anchor upkeep); a re-sign
-- of the same seq replaces the row (newer issued_at). Older rows stay, so a verifier holding a body
-- at seq N can ask for N's header while a newer one is being signed.
CREATE TABLE crl_meta (
  identity text NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 0),
  records bigint NOT NULL CHECK (records >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  issued_at timestamptz NOT NULL,
  next_update timestamptz NOT NULL CHECK (next_update > issued_at),
  signer_key_id text NOT NULL,
  -- The JWS text exactly as served.
  jws text NOT NULL,
  PRIMARY KEY (identity, seq)
);

-- serve reads the headers it publishes; the worker writes them. On a fresh cluster this runs before
-- 085 makes the roles, so it makes them here the same idempotent way (085 then finds them); on a
-- database already past 085 they exist.
DO $$
BEGIN
  BEGIN
    CREATE ROLE rotor_serve LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- 085, or another database's migration, made it first
  END;
  BEGIN
    CREATE ROLE rotor_worker LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
END $$;
GRANT SELECT ON crl_meta TO rotor_serve;
GRANT SELECT, INSERT, UPDATE ON crl_meta TO rotor_worker;
