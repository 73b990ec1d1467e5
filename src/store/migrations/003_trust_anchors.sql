-- Trust anchor documents per signing identity: a monotonic version, each version immutable, the
-- text stored exactly as served (its ETag is the hash of those bytes).
CREATE TABLE trust_anchors (
  identity text NOT NULL,
  version integer NOT NULL CHECK (version > 0),
  text text NOT NULL,
  etag text NOT NULL,
  active_key_id text NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (identity, version)
);

CREATE FUNCTION rotor_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER trust_anchors_append_only BEFORE UPDATE OR DELETE ON trust_anchors
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();
