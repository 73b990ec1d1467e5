-- Verification results that verifiers report at check-in: VALID counts per key_id (in
-- verifier_key_results, 006) and rejection counts per key_id and reason (here). Each check-in's
-- increase over the verifier's previous report is added to a time bucket (the live rotation page's
-- chart, the analysis gate's window) and to running totals (Prometheus counters).

-- Each verifier's latest cumulative rejection counts; a count lower than before means the verifier
-- restarted, and the whole new count is the increase.
CREATE TABLE verifier_rejections (
  verifier_id text COLLATE "C" NOT NULL,
  -- 'none' when the rejected manifest named no key_id.
  key_id text COLLATE "C" NOT NULL,
  reason text NOT NULL,
  count bigint NOT NULL CHECK (count >= 0),
  reported_at timestamptz NOT NULL,
  PRIMARY KEY (verifier_id, key_id, reason)
);

-- outcome: 'VALID' or a rejection reason (unknown_key, bad_signature, revoked, expired, malformed,
-- no_anchor, other).
CREATE TABLE verification_buckets (
  identity text NOT NULL,
  bucket timestamptz NOT NULL,
  key_id text COLLATE "C" NOT NULL,
  outcome text NOT NULL,
  count bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (identity, bucket, key_id, outcome)
);

CREATE TABLE verification_totals (
  identity text NOT NULL,
  key_id text COLLATE "C" NOT NULL,
  outcome text NOT NULL,
  count bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (identity, key_id, outcome)
);
