-- Authenticated adoption (issue 12, point 4): a verifier is registered with a credential of its
-- own, bound to its id and identity, stored as the SHA-256 of a 32-byte secret (the secret is
-- shown once and never stored). A registered verifier stays in the adoption and acceptance gates'
-- set whether or not it checks in (silence is "behind", not "gone") until an operator retires it.
-- Rows without a credential are verifiers that checked in with the shared fleet token before
-- registration existed; they count only while they check in.
ALTER TABLE verifiers
  ADD COLUMN credential_sha256 bytea CHECK (credential_sha256 IS NULL OR octet_length(credential_sha256) = 32),
  ADD COLUMN registered_at timestamptz,
  ADD COLUMN checked_in boolean NOT NULL DEFAULT true,
  ADD COLUMN retired_at timestamptz,
  ADD COLUMN retired_reason text,
  -- The SHA-256 of the signed anchor (trust-anchor.jws as served) the verifier last reported.
  ADD COLUMN anchor_sha256 text CHECK (anchor_sha256 IS NULL OR anchor_sha256 ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT verifiers_registered_has_credential CHECK ((registered_at IS NULL) = (credential_sha256 IS NULL)),
  ADD CONSTRAINT verifiers_retired_has_reason CHECK ((retired_at IS NULL) = (retired_reason IS NULL));
CREATE INDEX verifiers_identity ON verifiers (identity) WHERE retired_at IS NULL;
