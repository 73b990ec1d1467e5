-- Manifests a rotation declined to re-issue, each with its reason (verify before trust: a forged,
-- foreign, schema-invalid, revoked, expired or nearly expired manifest is never signed). The full
-- list lives here; the workflow carries only counts and a small sample, so its history stays
-- bounded whatever the fleet size. One row per manifest per rotation run.
CREATE TABLE rotation_declined (
  run_id text COLLATE "C" NOT NULL,
  workflow_id text NOT NULL,
  manifest_id text COLLATE "C" NOT NULL,
  key_id text,
  code text NOT NULL CHECK (code ~ '^[a-z-]+$'),
  reason text NOT NULL,
  declined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, manifest_id)
);
CREATE INDEX rotation_declined_workflow ON rotation_declined (workflow_id, declined_at);
