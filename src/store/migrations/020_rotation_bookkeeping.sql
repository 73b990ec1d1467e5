-- Audit entries written by a workflow carry an idempotency key (workflow id, run, step, a
-- sequence that does not depend on the attempt), so a retried bookkeeping activity finds the
-- entry its first attempt wrote instead of appending a duplicate. Not part of the hashed content:
-- it names the writer's attempt, not a fact.
ALTER TABLE audit_log ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX audit_log_idempotency_key ON audit_log (idempotency_key) WHERE idempotency_key IS NOT NULL;
