/**
 * Manifest delivery through a real rotation (Temporal, Postgres, `rotor serve`, a reference
 * verifier): while a live verifier still holds the old anchor, agents keep getting their original
 * manifests; once the adoption gate passes, the rotation releases the new key's twins and agents
 * get those, each fetch recorded as a pickup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredential, pickupCounts } from '../../src/store/delivery';
import { pageManifests } from '../../src/store/manifests';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { CHECKIN_TOKEN, createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const IDENTITY = 'delivery-order';

let env: RotationEnv;
beforeAll(async () => {
  env = await createRotationEnv('software', { identity: IDENTITY });
});
afterAll(async () => {
  await env?.close();
});

describe('manifest delivery in the safe order', () => {
  it('hands out a twin only after the adoption gate passed for the anchor that trusts its key', async () => {
    const signer = await env.initIdentity(IDENTITY);
    await env.seed(IDENTITY, signer, 8);
    const originals = await pageManifests(env.db.pool, { status: 'active', limit: 100 });
    const agentOf = (text: string | null) => (JSON.parse(text ?? '') as { agent_id: string }).agent_id;
    const { token } = await createCredential(env.db.pool, {
      kind: 'deployment',
      agentPrefixes: ['spiffe://'],
    });
    const fetchManifest = async (agentId: string) => {
      const res = await fetch(`${env.baseUrl}/v1/agents/${encodeURIComponent(agentId)}/manifest`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      return res.text();
    };
    // A live verifier on anchor v1: the adoption gate holds until it refreshes.
    const verifier = new ReferenceVerifier({
      id: 'sidecar-1',
      baseUrl: env.baseUrl,
      checkInToken: CHECKIN_TOKEN,
      root: await env.rootOf(IDENTITY),
    });
    await verifier.refresh();
    await verifier.checkIn();

    const handle = await env.start(IDENTITY, 'personnel', {
      adoptBySeconds: 40,
      revokeAtSeconds: 40,
      decommissionAtSeconds: 41,
    });
    const waiting = await env.waitForStatus(
      handle,
      'the adoption gate holding on sidecar-1',
      (s) => s.phase === 'await-adoption' && s.blockers.some((b) => b.includes('sidecar-1')),
    );
    const newKey = waiting.newKeyId!;
    expect((await pageManifests(env.db.pool, { keyId: newKey, status: 'active', limit: 100 })).length).toBe(
      8,
    );
    // Twins exist and are `active` in the store, yet every agent still gets its original.
    for (const m of originals) expect(await fetchManifest(agentOf(m.text))).toBe(m.text);
    expect((await pickupCounts(env.db.pool, newKey)).pickedUp).toBe(0);

    await verifier.refresh();
    expect(verifier.anchorVersion).toBe(waiting.anchorVersion);
    await verifier.checkIn();
    await env.waitForStatus(handle, 'past await-adoption', (s) =>
      s.timeline.some((e) => e.step === 'await-adoption' && e.actualEnd !== undefined),
    );
    const { rows } = await env.db.pool.query(
      `SELECT details FROM audit_log WHERE action = 'rotation.delivery-released'`,
    );
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0].details)).toMatchObject({ keyId: newKey, twins: 8 });
    for (const m of originals) {
      const text = await fetchManifest(agentOf(m.text));
      expect(text).not.toBe(m.text);
      const parsed = JSON.parse(text) as { previous_manifest_id: string; signature: { key_id: string } };
      expect(parsed.previous_manifest_id).toBe(m.manifestId);
      expect(parsed.signature.key_id.replace(/^sha256:/, '')).toBe(newKey);
      expect(verifier.verify(text).result).toBe('VALID');
    }
    expect(await pickupCounts(env.db.pool, newKey)).toMatchObject({ twins: 8, pickedUp: 8 });
    await verifier.checkIn();
    expect((await env.finish(handle)).phase).toBe('completed');
  }, 120_000);
});
