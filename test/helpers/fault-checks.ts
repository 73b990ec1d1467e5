/**
 * What a rotation that lived through a fault must still show: every manifest re-issued exactly
 * once and revoked exactly once, no twin lost or doubled, every active manifest VALID, and the
 * audit chain intact with no entry recorded twice.
 */
import { expect } from 'vitest';
import { verifyAuditChain } from '../../src/store/audit';
import { allManifests, expectActiveManifestsValid } from './rotation-checks';
import type { RotationEnv } from './rotation-env';

export async function expectCleanRotation(
  env: RotationEnv,
  r: { identity: string; oldKeyId: string; newKeyId: string; count: number },
): Promise<void> {
  const twins = await allManifests(env, { keyId: r.newKeyId });
  expect(twins, 'one twin per manifest').toHaveLength(r.count);
  const predecessors = new Set(
    twins.map((t) => (JSON.parse(t.text) as { previous_manifest_id: string }).previous_manifest_id),
  );
  expect(predecessors.size, 'no manifest re-issued twice').toBe(r.count);
  const old = await allManifests(env, { keyId: r.oldKeyId });
  expect(old).toHaveLength(r.count);
  for (const m of old) expect(predecessors.has(m.manifestId), `${m.manifestId} has a twin`).toBe(true);
  const revoked = await allManifests(env, { keyId: r.oldKeyId, status: 'revoked' });
  expect(revoked, 'every old manifest revoked').toHaveLength(r.count);
  const { rows } = await env.db.pool.query<{ n: string; distinct_ids: string }>(
    `SELECT count(*) AS n, count(DISTINCT manifest_id) AS distinct_ids FROM revocations
      WHERE manifest_id = ANY($1::text[])`,
    [old.map((m) => m.manifestId)],
  );
  expect(Number(rows[0]!.n), 'one revocation record per manifest').toBe(r.count);
  expect(Number(rows[0]!.distinct_ids)).toBe(r.count);
  await expectActiveManifestsValid(env, r.identity, r.newKeyId, r.count, [r.oldKeyId]);
  await expectAuditIntact(env);
}

export async function expectAuditIntact(env: RotationEnv): Promise<void> {
  const chain = await verifyAuditChain(env.db.pool);
  expect(chain.problems).toEqual([]);
  expect(chain.ok).toBe(true);
  const { rows } = await env.db.pool.query<{ action: string; subject: string | null; details: string }>(
    'SELECT action, subject, details FROM audit_log ORDER BY id',
  );
  const seen = new Map<string, number>();
  for (const row of rows) {
    // Details are stored in canonical form, so equal facts are equal text.
    const key = `${row.action} ${row.subject} ${row.details}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  const doubled = [...seen].filter(([, n]) => n > 1).map(([k]) => k.slice(0, 200));
  expect(doubled, 'no audit entry recorded twice').toEqual([]);
}
