/**
 * The pickup gate on the real stack: before revocation, agents that fetch from `rotor serve` must
 * have picked up their twins. One agent seen fetching but stuck on its original holds revocation
 * until the bound, then the rotation pauses and alerts; an agent never seen fetching does not hold
 * it past the delivery cache lifetime plus the margin; `resume --force` goes past this gate only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredential } from '../../src/store/delivery';
import { pageManifests } from '../../src/store/manifests';
import { resumeUpdate } from '../../src/workflows/rotation-api';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const IDENTITY = 'pickup-gate';

let env: RotationEnv;
beforeAll(async () => {
  env = await createRotationEnv('software', { identity: IDENTITY });
}, 120_000);
afterAll(async () => {
  await env?.close();
});

describe('pickup gate', () => {
  it('pauses at the bound with an agent behind, counts each state, and goes on after a forced resume', async () => {
    const signer = await env.initIdentity(IDENTITY);
    await env.seed(IDENTITY, signer, 7);
    const originals = await pageManifests(env.db.pool, { status: 'active', limit: 100 });
    const agents = originals.map((m) => (JSON.parse(m.text!) as { agent_id: string }).agent_id);
    const { token } = await createCredential(env.db.pool, {
      kind: 'deployment',
      agentPrefixes: ['spiffe://'],
    });
    const fetchAgent = (a: string) =>
      fetch(`${env.baseUrl}/v1/agents/${encodeURIComponent(a)}/manifest`, {
        headers: { Authorization: `Bearer ${token}` },
      }).then((r) => r.text());
    // Six agents fetch (are seen); the seventh never does.
    const [stuck, ...rest] = agents.slice(0, 6);
    const never = agents[6]!;
    for (const a of agents.slice(0, 6)) await fetchAgent(a);
    let running = true;
    const agentsLoop = (async () => {
      while (running) {
        await Promise.all(rest.map(fetchAgent));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      const handle = await env.start(IDENTITY, 'personnel', {
        revokeAtSeconds: 6,
        adoptBySeconds: 6,
        decommissionAtSeconds: 7,
        pickupGraceSeconds: 3,
        deliveryMaxAgeSeconds: 1,
        pickupMarginSeconds: 0,
      });
      const paused = await env.waitForStatus(
        handle,
        'paused at the pickup bound',
        (s) => s.pause?.kind === 'pickup',
        90_000,
      );
      expect(paused.pauseReason).toMatch(/^pickup bound passed: 5 of 7 agent\(s\) picked up/);
      expect(paused.phase).toBe('pre-revocation');
      expect(paused.gates?.pickup).toMatchObject({
        mode: 'fetch',
        satisfied: false,
        twins: 7,
        pickedUp: 5,
        seenNotPickedUp: 1,
        neverSeen: 1,
        behind: [stuck],
      });
      expect(paused.pauseReason).toContain(stuck);
      expect(paused.pauseReason).not.toContain(`behind: ${never}`);
      expect(paused.progress.revoke.total).toBe(0);
      // The alert and the audit entry follow the pause.
      const boundEntry = async () =>
        (
          await env.db.pool.query(
            `SELECT details FROM audit_log WHERE action = 'rotation.pickup-bound' AND subject = $1`,
            [paused.workflowId],
          )
        ).rows[0]?.details as string | undefined;
      await expect.poll(boundEntry, { timeout: 20_000 }).toBeDefined();
      expect(JSON.parse((await boundEntry())!)).toMatchObject({
        pickedUp: 5,
        seenNotPickedUp: 1,
        neverSeen: 1,
      });

      await handle.executeUpdate(resumeUpdate, {
        args: [{ force: true, reason: 'agent decommissioned (test)' }],
      });
      const done = await env.finish(handle);
      expect(done.phase).toBe('completed');
      expect(done.progress.revoke.done).toBe(7);
      const forced = await env.db.pool.query(
        `SELECT count(*)::int AS n FROM audit_log WHERE action = 'rotation.pickup-forced' AND subject = $1`,
        [paused.workflowId],
      );
      expect(forced.rows[0].n).toBe(1);
    } finally {
      running = false;
      await agentsLoop;
    }
  }, 150_000);
});
