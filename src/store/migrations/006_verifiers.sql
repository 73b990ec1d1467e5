-- Verifiers that check in: what anchor version they hold, which keys they trust, and per key_id
-- how many VALID results they have reported. accepted_at is set the first time a verifier
-- reports a VALID result for a key and never cleared (a restart resets the verifier's counter,
-- not the fact that it accepted the key).
CREATE TABLE verifiers (
  verifier_id text COLLATE "C" PRIMARY KEY,
  identity text NOT NULL,
  anchor_version integer NOT NULL CHECK (anchor_version >= 0),
  trusted_key_ids text[] NOT NULL,
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL
);
CREATE INDEX verifiers_last_seen ON verifiers (last_seen_at);

CREATE TABLE verifier_key_results (
  verifier_id text COLLATE "C" NOT NULL REFERENCES verifiers ON DELETE CASCADE,
  key_id text COLLATE "C" NOT NULL,
  valid_count bigint NOT NULL CHECK (valid_count >= 0),
  accepted_at timestamptz,
  reported_at timestamptz NOT NULL,
  PRIMARY KEY (verifier_id, key_id)
);
CREATE INDEX verifier_key_results_accepted ON verifier_key_results (key_id) WHERE accepted_at IS NOT NULL;
