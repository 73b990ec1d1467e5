-- Manifest v0.2 (docs/upstream/agent-manifest-cose-envelope-v0.2.md): the copy of record of a
-- v0.2 manifest is its COSE envelope, bytes exactly as received or as signed. A row holds either
-- a v0.1 JSON text or a v0.2 envelope, never both; the index columns are read out of whichever
-- it is at import (for v0.2: from the payload, key_id from the protected header's kid).
ALTER TABLE manifests ALTER COLUMN text DROP NOT NULL;
ALTER TABLE manifests ADD COLUMN envelope bytea;
ALTER TABLE manifests ADD COLUMN version text NOT NULL DEFAULT '0.1';
ALTER TABLE manifests ADD CONSTRAINT manifests_version_known CHECK (version IN ('0.1', '0.2'));
ALTER TABLE manifests ADD CONSTRAINT manifests_one_copy_of_record CHECK (
  (version = '0.1' AND text IS NOT NULL AND envelope IS NULL)
  OR (version = '0.2' AND envelope IS NOT NULL AND text IS NULL)
);

-- The copy of record never changes once stored, whichever form it has; only status does.
CREATE OR REPLACE FUNCTION manifests_text_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.text IS DISTINCT FROM OLD.text OR NEW.envelope IS DISTINCT FROM OLD.envelope
     OR NEW.version IS DISTINCT FROM OLD.version OR NEW.manifest_id IS DISTINCT FROM OLD.manifest_id THEN
    RAISE EXCEPTION 'manifest % copy of record is immutable', OLD.manifest_id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;

-- Counts per version and status (the migration's progress, the demo's summary).
CREATE INDEX manifests_version_status ON manifests (version, status);
