-- Issue 15: a rotation updates every manifest it re-signs and revokes twice (active -> superseded,
-- then -> revoked). Two costs of those updates that buy nothing:
--
-- 1. The immutability check ran for every updated row, though a status change names no column of
--    the copy of record. The trigger now fires only when an UPDATE names a column it guards
--    (CREATE TRIGGER ... UPDATE OF). A column an UPDATE does not name keeps its value (manifests
--    has no other BEFORE UPDATE trigger that could change NEW), so the guarantee is the same.
DROP TRIGGER manifests_text_is_immutable ON manifests;
CREATE TRIGGER manifests_text_is_immutable BEFORE UPDATE OF manifest_id, text, envelope, version ON manifests
  FOR EACH ROW EXECUTE FUNCTION manifests_text_is_immutable();

-- 2. Two indexes that hold `status` were written on every insert and every status change, and
--    serve no query a rotation or `rotor serve` runs: every hot query names the key
--    (manifests_key_status_id), and what filters by status or version alone (`rotor manifests
--    export --status/--version`, the demo's counts per version) reads the whole table in
--    manifest_id order or counts all of it anyway. Measured with bench/rotation-resign.ts at
--    100,000 manifests (BENCHMARKS.md, "Quiet machine, fourth session").
DROP INDEX manifests_status_id;
DROP INDEX manifests_version_status;
