-- Audit log: append-only, each entry hash-chained to the one before. id is the position in the
-- chain (no gaps: a missing id is a deleted entry). audit_head holds the last id and hash, so
-- cutting entries off the end shows too, and its row lock serialises appends.
CREATE TABLE audit_log (
  id bigint PRIMARY KEY CHECK (id > 0),
  recorded_at timestamptz NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  subject text,
  details text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, id) WHERE subject IS NOT NULL;

CREATE TABLE audit_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_id bigint NOT NULL,
  last_hash text NOT NULL
);
INSERT INTO audit_head (last_id, last_hash) VALUES (0, '');

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();
