/**
 * Issue 11, point 1: a compromise is never undone. A compromise rotation is aborted at each of
 * its phases, held there by a real Postgres failure injected into that phase's writes (the
 * moment someone reaches for abort). Whatever the phase, the old key is never `active` again and
 * never reappears in a trust anchor once one was published without it. At decommission, the last
 * step, only the distrusted key is left to destroy: the abort is refused there, with the reason.
 */
import { type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getKey } from '../../src/store/keys';
import { abortUpdate, type RotationStatus, resumeUpdate } from '../../src/workflows/rotation-api';
import { failWrites } from '../helpers/faults';
import { expectReplays } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 40;

/** Every anchor version of `identity`, oldest first: the key ids each lists. */
async function anchorHistory(env: RotationEnv, identity: string) {
  const { rows } = await env.db.pool.query<{ version: number; text: string }>(
    'SELECT version, text FROM trust_anchors WHERE identity = $1 ORDER BY version',
    [identity],
  );
  return rows.map((r) => ({
    version: r.version,
    keys: (JSON.parse(r.text) as { keys: { key_id: string }[] }).keys.map((k) =>
      k.key_id.replace(/^sha256:/, ''),
    ),
  }));
}

/** Once a version without `keyId` was published, no later version lists it again. */
function expectNeverReappears(history: { version: number; keys: string[] }[], keyId: string) {
  const firstWithout = history.findIndex((a) => !a.keys.includes(keyId));
  if (firstWithout < 0) return false;
  for (const a of history.slice(firstWithout)) expect(a.keys, `anchor v${a.version}`).not.toContain(keyId);
  return true;
}

describe('abort of a compromise rotation at every phase (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;
  const recorded: WorkflowHandle[] = [];

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  async function compromised(identity: string) {
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    return signer.keyId;
  }

  const start = (identity: string) =>
    env.start(identity, 'compromise', {
      batchSize: 10,
      chunkSize: 20,
      stepAlertSeconds: 3,
      heartbeatTimeoutSeconds: 2,
    });

  const abort = (handle: WorkflowHandle) =>
    handle.executeUpdate(abortUpdate, { args: [{ reason: 'abort drill', by: 'oncall@example' }] });

  it('at preflight: nothing was changed, and nothing is', async () => {
    const oldKeyId = await compromised('abort-preflight');
    const handle = await start('abort-preflight');
    await abort(handle);
    const result = await env.finish(handle);
    expect(result.phase).toBe('aborted');
    expect(result.newKeyId).toBeUndefined();
    expect((await getKey(env.db.pool, oldKeyId))?.state).toBe('active');
    expect(await anchorHistory(env, 'abort-preflight')).toHaveLength(1);
  });

  // Each case: the table whose writes fail, which phase that holds, and what the abort leaves.
  const cases = [
    { phase: 'keygen', table: 'signing_keys', ops: 'INSERT' as const, when: undefined, distrusted: false },
    {
      phase: 'publish-anchor',
      table: 'trust_anchors',
      ops: 'INSERT' as const,
      when: undefined,
      distrusted: true,
    },
    {
      phase: 'revoke',
      table: 'revocations',
      ops: 'INSERT' as const,
      when: `NEW.line LIKE '%Key compromise%'`,
      distrusted: true,
    },
    { phase: 're-sign', table: 'manifests', ops: 'INSERT' as const, when: undefined, distrusted: true },
  ];

  for (const c of cases) {
    it(`at ${c.phase}: ${c.distrusted ? 'stops there; the old key stays distrusted' : 'the old key was never distrusted; only the new key is dropped'}`, async () => {
      const identity = `abort-${c.phase}`;
      const oldKeyId = await compromised(identity);
      const heal = await failWrites(env.db.pool, c.table, { ops: c.ops, when: c.when });
      try {
        const handle = await start(identity);
        if (c.phase === 'publish-anchor' || c.phase === 'revoke') recorded.push(handle);
        const held = await env.waitForStatus(
          handle,
          `${c.phase} failing`,
          (s) => s.phase === c.phase && s.pause?.kind === 'retrying',
        );
        // The last attempt's error, or its timeout when the time ran out during an attempt.
        expect(held.blockers[0]).toMatch(
          new RegExp(`^${c.phase} keeps failing: .*(injected fault|timed out)`),
        );
        // The update answers once its audit entry is written; the rotation may have ended by then.
        const accepted = await abort(handle);
        expect([c.phase, 'aborted']).toContain(accepted.phase);
        let result: RotationStatus;
        if (c.phase === 'publish-anchor') {
          // The stop makes sure the distrust is complete; it cannot while the anchor's table fails.
          const stuck = await env.waitForStatus(
            handle,
            'the abort held',
            (s) => s.pause?.kind === 'undo-failed',
          );
          expect(stuck.blockers[0]).toMatch(/^abort failed: .*injected fault/);
          await heal();
          await handle.executeUpdate(resumeUpdate, { args: [{ reason: 'database back' }] });
          result = (await handle.result()) as RotationStatus;
        } else {
          await heal();
          result = await env.finish(handle);
        }
        expect(result.phase).toBe('aborted');
        const oldKey = await getKey(env.db.pool, oldKeyId);
        const history = await anchorHistory(env, identity);
        if (c.distrusted) {
          expect(result.outcome).toMatch(
            /stopped on the compromise path: key .* stays out of the trust anchor/,
          );
          expect(oldKey?.state).toBe('retired');
          expect(expectNeverReappears(history, oldKeyId)).toBe(true);
          expect(history.at(-1)!.keys).toEqual([result.newKeyId]);
          expect((await getKey(env.db.pool, result.newKeyId!))?.state).toBe('active');
        } else {
          // Aborted before the switch: the anchor never changed, the old key never left.
          expect(result.outcome).toMatch(/aborted before the old key was distrusted|nothing changed/);
          expect(oldKey?.state).toBe('active');
          expect(history).toHaveLength(1);
        }
      } finally {
        await heal();
      }
    });
  }

  it('at decommission: refused, since only the distrusted key is left to destroy; completes once the database returns', async () => {
    const identity = 'abort-decommission';
    const oldKeyId = await compromised(identity);
    const heal = await failWrites(env.db.pool, 'signing_keys', {
      ops: 'UPDATE',
      when: `NEW.state = 'destroyed'`,
    });
    try {
      const handle = await start(identity);
      await env.waitForStatus(
        handle,
        'decommission failing',
        (s) => s.phase === 'decommission' && s.pause?.kind === 'retrying',
      );
      const refused = abort(handle);
      await expect(refused).rejects.toThrow(WorkflowUpdateFailedError);
      await expect(refused).rejects.toMatchObject({
        cause: {
          message:
            'the old key is already being destroyed (the last step); nothing is left to abort: the rotation completes once that step succeeds',
        },
      });
      await heal();
      const result = await env.finish(handle);
      expect(result.phase).toBe('completed');
      expect((await getKey(env.db.pool, oldKeyId))?.state).toBe('destroyed');
      expect(expectNeverReappears(await anchorHistory(env, identity), oldKeyId)).toBe(true);
    } finally {
      await heal();
    }
  });

  it('replays (histories recorded for the compromise abort)', async () => {
    await expectReplays(recorded);
  });
});
