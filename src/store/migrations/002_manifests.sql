-- Manifests: the exact JSON text is the copy of record (never jsonb: it rewrites numbers and key
-- order); the other columns are extracted from it for indexing and never served.
CREATE TABLE manifests (
  manifest_id text COLLATE "C" PRIMARY KEY,
  agent_id text,
  key_id text COLLATE "C",
  issued_at timestamptz,
  expires_at timestamptz,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'revoked')),
  previous_manifest_id text COLLATE "C",
  text text NOT NULL,
  stored_at timestamptz NOT NULL DEFAULT now(),
  status_changed_at timestamptz NOT NULL DEFAULT now()
);

-- "Active manifests of key K", counted and paged in manifest_id order (keyset pagination).
CREATE INDEX manifests_key_status_id ON manifests (key_id, status, manifest_id);
CREATE INDEX manifests_status_id ON manifests (status, manifest_id);

-- A manifest has at most one re-issued twin: a rotation that re-runs cannot create a second one.
CREATE UNIQUE INDEX manifests_previous_manifest_id ON manifests (previous_manifest_id)
  WHERE previous_manifest_id IS NOT NULL;

-- The signed text never changes once stored; only status does.
CREATE FUNCTION manifests_text_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.text IS DISTINCT FROM OLD.text OR NEW.manifest_id IS DISTINCT FROM OLD.manifest_id THEN
    RAISE EXCEPTION 'manifest % text is immutable', OLD.manifest_id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER manifests_text_is_immutable BEFORE UPDATE ON manifests
  FOR EACH ROW EXECUTE FUNCTION manifests_text_is_immutable();
