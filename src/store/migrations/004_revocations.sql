-- The deployment's CRL: one FileCRL line per revoked manifest_id, stored exactly as signed,
-- append-only. seq is the publication order the stream follows.
CREATE TABLE revocations (
  manifest_id text COLLATE "C" PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  line text NOT NULL CHECK (position(E'\n' IN line) = 0 AND position(E'\r' IN line) = 0),
  signer_key_id text NOT NULL,
  revoked_at text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER revocations_append_only BEFORE UPDATE OR DELETE ON revocations
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();

-- How many records the CRL holds, kept by a trigger in the inserting transaction. Read in the
-- same snapshot as the stream it becomes the CRL's ETag, and the row lock orders concurrent
-- appends by commit, so a count names exactly one content.
CREATE TABLE crl_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  records bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO crl_state (records) VALUES (0);

CREATE FUNCTION crl_state_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE crl_state SET records = records + (SELECT count(*) FROM new_rows), updated_at = now();
  RETURN NULL;
END $$;
CREATE TRIGGER revocations_count AFTER INSERT ON revocations
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crl_state_count();
