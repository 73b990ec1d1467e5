-- Audit checkpoints (issue 12, point 6): the audit head at each rotation phase, signed by the
-- identity's anchor root keys (src/manifest/audit-checkpoint.ts). Append-only like the log; a
-- superuser can delete or edit rows, but cannot make signatures the pinned roots accept.
CREATE TABLE audit_checkpoints (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  identity text NOT NULL,
  audit_id bigint NOT NULL CHECK (audit_id > 0),
  audit_hash text NOT NULL CHECK (audit_hash ~ '^[0-9a-f]{64}$'),
  issued_at text NOT NULL,
  root_version integer NOT NULL,
  signatures jsonb NOT NULL,
  UNIQUE (identity, audit_id)
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION rotor_reject_change();
