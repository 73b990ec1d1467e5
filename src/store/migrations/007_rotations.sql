-- One row per rotation workflow run: what `rotor rotate list` shows, and what the 90-day policy
-- reads to tell when an identity's key was last rotated (for any reason).
CREATE TABLE rotations (
  workflow_id text NOT NULL,
  run_id text NOT NULL,
  identity text NOT NULL,
  trigger text NOT NULL CHECK (trigger IN ('compromise', 'scheduled', 'personnel', 'hsm-replacement')),
  phase text NOT NULL,
  old_key_id text,
  new_key_id text,
  outcome text,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  PRIMARY KEY (run_id)
);

CREATE INDEX rotations_identity_started ON rotations (identity, started_at DESC);
