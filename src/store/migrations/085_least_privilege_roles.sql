-- Least privilege (issue 12, point 6): no component needs to run as the database owner, let
-- alone a superuser. Two login roles, created once per cluster (concurrent migrations of several
-- databases may race to create them), granted per database here:
--   rotor_serve   `rotor serve`: reads the anchor, the CRL and the manifests it hands out; writes
--                 only check-ins, verification results and manifest pickups. It cannot publish an
--                 anchor, append a revocation, register a key or touch the audit log.
--   rotor_worker  the worker's activities: read and write the stores, never change the schema,
--                 and never delete (the append-only tables refuse edits by trigger anyway).
-- Passwords are the operator's: `rotor db migrate` sets them from ROTOR_SERVE_DB_PASSWORD and
-- ROTOR_WORKER_DB_PASSWORD when given (compose does), never in a migration.
DO $$
BEGIN
  BEGIN
    CREATE ROLE rotor_serve LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database's migration made it first
  END;
  BEGIN
    CREATE ROLE rotor_worker LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
END $$;

GRANT USAGE ON SCHEMA public TO rotor_serve, rotor_worker;

-- serve: read what it publishes
GRANT SELECT ON trust_anchors, revocations, revocations_compacted, crl_state, manifests,
  delivery_credentials, delivery_releases, delivery_agents, manifest_pickups, verifiers,
  verifier_key_results, verifier_rejections, verification_buckets, verification_totals, rotations,
  signing_keys, anchor_roots
  TO rotor_serve;
-- serve: what verifiers and agents report
GRANT INSERT, UPDATE ON verifiers, verifier_key_results, verifier_rejections, verification_buckets,
  verification_totals, manifest_pickups, delivery_agents
  TO rotor_serve;

-- worker: the stores, rows only
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO rotor_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rotor_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rotor_serve;
-- Tables later migrations create: the worker gets rows of them too; serve only what a migration grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO rotor_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO rotor_worker;
