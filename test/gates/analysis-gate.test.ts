/**
 * The analysis gate on the real stack: a verifier mis-pinned to the old key (it refuses the new
 * key although the anchor lists it) reports rising rejections of new-key manifests at check-in
 * once agents switch to their twins; the rotation pauses before revocation with the figures in
 * its status, the audit log and `/metrics` — or, when the policy says so, rolls back on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredential } from '../../src/store/delivery';
import { pageManifests } from '../../src/store/manifests';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { type RotationStatus, rollbackUpdate } from '../../src/workflows/rotation-api';
import { CHECKIN_TOKEN, createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const IDENTITY = 'analysis-gate';

let env: RotationEnv;
let verifier: ReferenceVerifier;
let loop: Promise<void> | undefined;
let agents: string[] = [];
let token = '';

beforeAll(async () => {
  env = await createRotationEnv('software', { identity: IDENTITY });
  const signer = await env.initIdentity(IDENTITY);
  await env.seed(IDENTITY, signer, 10);
  const originals = await pageManifests(env.db.pool, { status: 'active', limit: 100 });
  agents = originals.slice(0, 5).map((m) => (JSON.parse(m.text!) as { agent_id: string }).agent_id);
  ({ token } = await createCredential(env.db.pool, { kind: 'deployment', agentPrefixes: ['spiffe://'] }));
  verifier = new ReferenceVerifier({
    id: 'mispinned-1',
    baseUrl: env.baseUrl,
    checkInToken: CHECKIN_TOKEN,
    root: await env.rootOf(IDENTITY),
  });
  // Agents fetch their current manifest and present it to the verifier, continuously.
  loop = verifier.runLoop({
    intervalMs: 200,
    manifests: () =>
      Promise.all(
        agents.map(async (a) => {
          const res = await fetch(`${env.baseUrl}/v1/agents/${encodeURIComponent(a)}/manifest`, {
            headers: { Authorization: `Bearer ${token}` },
          });
          return res.text();
        }),
      ),
  });
}, 120_000);

afterAll(async () => {
  await verifier?.stop();
  await loop;
  await env?.close();
});

const POLICY = {
  resignAtSeconds: 3,
  adoptBySeconds: 40,
  revokeAtSeconds: 40,
  decommissionAtSeconds: 41,
  analysisWindowSeconds: 30,
  analysisMaxRejections: 5,
  analysisMinResults: 1000,
  deliveryMaxAgeSeconds: 1,
  pickupMarginSeconds: 0,
};

async function startRefusingNewKey(policy: Record<string, unknown>) {
  const handle = await env.start(IDENTITY, 'personnel', { ...POLICY, ...policy });
  const s = await env.waitForStatus(handle, 'a new key', (st) => st.newKeyId !== undefined);
  verifier.refuseKey(s.newKeyId!);
  return { handle, newKeyId: s.newKeyId! };
}

describe('analysis gate', () => {
  it('a mis-pinned verifier makes the rotation pause before revocation, with the figures in status, audit log and metrics', async () => {
    const { handle, newKeyId } = await startRefusingNewKey({});
    const paused = await env.waitForStatus(
      handle,
      'paused by the analysis gate',
      (s) => s.pause?.kind === 'analysis',
      90_000,
    );
    expect(paused.pauseReason).toMatch(/^analysis gate tripped: /);
    expect(paused.phase).toBe('pre-revocation');
    expect(paused.gates?.analysis.tripped).toBe(true);
    expect(paused.gates!.analysis.rejections).toBeGreaterThan(5);
    expect(paused.gates!.analysis.byReason['new/unknown_key']).toBe(paused.gates!.analysis.rejections);
    expect(paused.pauseReason).toMatch(
      /\d+ rejection\(s\) of \d+ result\(s\) in the last 30 s .*new\/unknown_key/,
    );
    // Nothing revoked: the old manifests still stand.
    expect(paused.progress.revoke.total).toBe(0);
    expect(paused.timeline.find((e) => e.step === 'revoke')?.actualStart).toBeUndefined();
    const tripped = async () =>
      (
        await env.db.pool.query(
          `SELECT details FROM audit_log WHERE action = 'rotation.analysis-tripped' AND subject = $1`,
          [paused.workflowId],
        )
      ).rows;
    await expect.poll(async () => (await tripped()).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    const rows = await tripped();
    const details = JSON.parse(rows[0].details) as { rejections: number; byReason: Record<string, number> };
    expect(details.rejections).toBeGreaterThan(5);
    expect(details.byReason['new/unknown_key']).toBeGreaterThan(5);
    // /metrics is on rotor serve's own listener (loopback), not the public one.
    const { port: metricsPort } = await env.http.listenMetrics(0);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = metrics
      .split('\n')
      .find((l) =>
        l.startsWith(
          `rotor_verifier_results_total{identity="${IDENTITY}",key_id="${newKeyId}",outcome="unknown_key"}`,
        ),
      );
    expect(Number(line?.split(' ').at(-1))).toBeGreaterThan(5);
    // Still paused while the rejections go on; on-call rolls back.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await handle.query<RotationStatus>('status')).paused).toBe(true);
    await handle.executeUpdate(rollbackUpdate, { args: [{ reason: 'EU verifiers mis-pinned (test)' }] });
    expect((await env.finish(handle)).phase).toBe('rolled-back');
  }, 150_000);

  it('with analysisRollback the rotation rolls back on its own while rollback is possible', async () => {
    const { handle } = await startRefusingNewKey({ analysisRollback: true });
    const done = await env.finish(handle, 120_000);
    expect(done.phase).toBe('rolled-back');
    expect(done.outcome).toMatch(
      /^automatic rollback by the analysis gate: analysis gate tripped: \d+ rejection/,
    );
    expect(done.progress.revoke.total).toBe(0);
  }, 150_000);
});
