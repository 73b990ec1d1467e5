/**
 * Issue 11, point 6: a step retries without an attempt cap (backoff up to a minute); one that
 * keeps failing past `policy.stepAlertSeconds` pauses and alerts, and goes on by itself once its
 * dependency is back. What can never succeed pauses for a person at once. Audit entries carry an
 * idempotency key, so retries never duplicate them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, listAudit, verifyAuditChain } from '../../src/store/audit';
import { getKey } from '../../src/store/keys';
import { failWrites } from '../helpers/faults';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 30;

describe('retries and idempotent audit (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a step whose dependency fails pauses and alerts, then goes on by itself when it is back', async () => {
    const signer = await env.initIdentity('retry-anchor');
    await env.seed('retry-anchor', signer, COUNT);
    // Writes of new anchor versions fail, as during a Postgres failover, until healed.
    const heal = await failWrites(env.db.pool, 'trust_anchors', { ops: 'INSERT' });
    try {
      const handle = await env.start('retry-anchor', 'personnel', { minKeyAgeDays: 0, stepAlertSeconds: 3 });
      const failing = await env.waitForStatus(
        handle,
        'the retrying pause',
        (s) => s.pause?.kind === 'retrying',
      );
      expect(failing.phase).toBe('publish-anchor');
      expect(failing.pauseReason).toMatch(/^publish-anchor has failed for over 3 s; retrying by itself/);
      expect(failing.blockers[0]).toMatch(
        /^publish-anchor keeps failing: .*injected fault: writes to trust_anchors/,
      );
      // Nothing half-done: the registry did not move without the anchor.
      expect((await getKey(env.db.pool, signer.keyId))?.state).toBe('active');
      await heal();
      // No resume is sent: the next attempt succeeds and the rotation carries on.
      const result = await env.finish(handle);
      expect(result.phase).toBe('completed');
      const actions = (await listAudit(env.db.pool, { subject: handle.workflowId, limit: 500 })).map(
        (e) => e.action,
      );
      expect(actions).toContain('rotation.step-failing');
      expect(actions).toContain('rotation.step-recovered');
      // One entry per step, however many attempts its activities took.
      for (const step of ['preflight', 'keygen', 're-sign', 'publish-anchor', 'revoke', 'decommission']) {
        expect(
          actions.filter((a) => a === `rotation.${step}`),
          step,
        ).toHaveLength(1);
      }
      const { rows } = await env.db.pool.query<{ n: string; keys: string }>(
        `SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM audit_log WHERE subject = $1`,
        [handle.workflowId],
      );
      expect(Number(rows[0]!.n)).toBeGreaterThan(8);
      expect(rows[0]!.keys).toBe(rows[0]!.n);
    } finally {
      await heal();
    }
  });

  it('what can never succeed pauses for a person at once: an anchor moved behind the rotation', async () => {
    const signer = await env.initIdentity('retry-conflict');
    await env.seed('retry-conflict', signer, COUNT);
    const handle = await env.start('retry-conflict', 'personnel', {
      minKeyAgeDays: 0,
      resignAtSeconds: 15,
      adoptBySeconds: 16,
      revokeAtSeconds: 16,
      decommissionAtSeconds: 17,
      stepAlertSeconds: 600,
    });
    const waiting = await env.waitForPhase(handle, ['waiting']);
    // Another publisher moves the anchor after the preflight read its version.
    await env.db.pool.query(
      `INSERT INTO trust_anchors (identity, version, text, etag, active_key_id)
       SELECT identity, version + 1, text, etag || '-x', active_key_id FROM trust_anchors
        WHERE identity = $1 ORDER BY version DESC LIMIT 1`,
      ['retry-conflict'],
    );
    const held = await env.waitForStatus(
      handle,
      'the step-failed pause',
      (s) => s.pause?.kind === 'step-failed',
    );
    expect(held.phase).toBe('publish-anchor');
    expect(held.blockers[0]).toMatch(
      /^publish-anchor failed: trust anchor of retry-conflict is at version 2, this switch expected 1: another publisher moved it; nothing was changed$/,
    );
    expect(waiting.anchorVersion).toBe(1);
    // The key switch changed nothing: the old key is still the active one.
    expect((await getKey(env.db.pool, signer.keyId))?.state).toBe('active');
    await handle.terminate('test over');
  });

  it('an audit entry appended twice with one idempotency key is written once', async () => {
    const a = await appendAudit(env.db.pool, {
      actor: 'test',
      action: 'rotation.test',
      subject: 'idem',
      details: { n: 1 },
      idempotencyKey: 'rotation/idem/run#1:test',
    });
    const b = await appendAudit(env.db.pool, {
      actor: 'test',
      action: 'rotation.test',
      subject: 'idem',
      details: { n: 1 },
      idempotencyKey: 'rotation/idem/run#1:test',
    });
    expect(b.id).toBe(a.id);
    expect(await listAudit(env.db.pool, { subject: 'idem' })).toHaveLength(1);
    expect((await verifyAuditChain(env.db.pool)).ok).toBe(true);
  });
});
