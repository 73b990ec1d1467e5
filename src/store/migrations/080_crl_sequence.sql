-- Incremental CRL refresh (issue 15): verifiers ask for the records after a sequence number
-- (`GET /.well-known/agent-manifest/revocation?since=N`) instead of the whole list, and records of
-- expired manifests are compacted out of the served list (ADR-0007, Consequences).
--
-- The sequence is revocations.seq (004): existing rows already hold it in insertion order, which is
-- the backfill. What it lacked is commit order: an identity value is drawn when the row is built,
-- so a transaction could commit seq 7 after another committed seq 8, and a verifier that had read
-- up to 8 would never see 7. From here on every statement that inserts into revocations first takes
-- the crl_state row lock (held to commit) and only then draws its values, so any row not yet visible
-- in a snapshot has a seq above that snapshot's head.

-- head: the highest seq any committed change of the CRL used (an append or a compaction); the
-- served list is a function of it, so the ETag is derived from it. horizon: the seq the latest
-- compaction took; a delta from before it cannot say what was removed, so it is refused.
-- compacted: records served no more (still in revocations, the archive).
ALTER TABLE crl_state
  ADD COLUMN head bigint NOT NULL DEFAULT 0,
  ADD COLUMN horizon bigint NOT NULL DEFAULT 0,
  ADD COLUMN compacted bigint NOT NULL DEFAULT 0;
UPDATE crl_state SET head = (SELECT coalesce(max(seq), 0) FROM revocations);

-- Fires before the statement's rows are built (ExecModifyTable and COPY fire statement triggers
-- before reading their input), so the identity values are drawn under the lock.
CREATE FUNCTION crl_state_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM crl_state FOR UPDATE;
  RETURN NULL;
END $$;
CREATE TRIGGER revocations_lock BEFORE INSERT ON revocations
  FOR EACH STATEMENT EXECUTE FUNCTION crl_state_lock();

CREATE OR REPLACE FUNCTION crl_state_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE crl_state
     SET records = records + (SELECT count(*) FROM new_rows),
         head = greatest(head, (SELECT max(seq) FROM new_rows)),
         updated_at = now();
  RETURN NULL;
END $$;

-- Records compacted out of the served list: their manifest expired (plus the margin) before the
-- compaction that took seq `horizon`. The record itself stays in revocations, append-only.
CREATE TABLE revocations_compacted (
  seq bigint PRIMARY KEY REFERENCES revocations (seq),
  manifest_id text COLLATE "C" NOT NULL,
  expires_at timestamptz NOT NULL,
  horizon bigint NOT NULL,
  compacted_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER revocations_compacted_append_only BEFORE UPDATE OR DELETE ON revocations_compacted
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();
