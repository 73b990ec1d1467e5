-- `rotor manifests import --unverified` stores a manifest it could not verify in quarantine:
-- kept for an operator to look at, never re-issued, revoked or counted by a rotation.
ALTER TABLE manifests DROP CONSTRAINT manifests_status_check;
ALTER TABLE manifests ADD CONSTRAINT manifests_status_check
  CHECK (status IN ('active', 'superseded', 'revoked', 'quarantined'));
