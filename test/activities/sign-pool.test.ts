/**
 * The re-sign step's sign pool (src/activities/sign-pool.ts, issue 15): a batch verified and signed
 * on worker threads comes back as it would from the activity's own thread (the same declines, twins
 * that verify under the new key), and a custodian's failure reaches the step as the custodian's
 * own error, so the step fails and is retried rather than declining manifests.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { BatchFacts, BatchRow } from '../../src/activities/reissue-batch';
import { signRows } from '../../src/activities/reissue-batch';
import { closeSignPool, signRowsOnPool } from '../../src/activities/sign-pool';
import { examineEnvelope, type Signer, softwareSigner, verifyCoseEnvelope } from '../../src/manifest/index';
import { syntheticManifests } from '../../src/synthetic/manifests';

const NOW = new Date();
const oldSigner = softwareSigner(new Uint8Array(32).fill(7));
const newSigner = softwareSigner(new Uint8Array(32).fill(8));

async function batch(count: number): Promise<BatchRow[]> {
  const rows: BatchRow[] = [];
  for await (const text of syntheticManifests(count, oldSigner, {
    seed: 5,
    // Issued before the decision's clock (a twin of a manifest issued later is declined).
    now: new Date(NOW.getTime() - 60_000),
  })) {
    const manifestId = JSON.parse(text).manifest_id as string;
    rows.push({ manifestId, text, envelope: null, keyId: oldSigner.keyId, storedAt: NOW });
  }
  // One tampered copy (its signature no longer covers it) and one unreadable.
  rows[3] = { ...rows[3]!, text: rows[3]!.text!.replace('"agent_id": "', '"agent_id": "x') };
  rows[7] = { ...rows[7]!, text: '{"manifest_id": ' };
  return rows;
}

const facts: BatchFacts = {
  registry: [{ keyId: oldSigner.keyId, identity: 'payments', publicKey: oldSigner.publicKey }],
  identity: 'payments',
  fromKeyId: oldSigner.keyId,
  now: NOW,
  status: 'active',
  revokedEarlier: [],
  reissueAs: '0.2',
};

afterAll(closeSignPool);

describe('sign pool', () => {
  it('declines what the activity thread declines and signs twins that verify under the new key', async () => {
    const rows = await batch(120);
    const onThreads = await signRowsOnPool(rows, facts, newSigner);
    const here = await signRows(rows, facts, newSigner);
    const codes = (r: typeof here) => r.declined.map((d) => `${d.manifestId} ${d.code}`).sort();
    expect(codes(onThreads)).toEqual(codes(here));
    expect(codes(onThreads)).toEqual(
      [`${rows[3]!.manifestId} bad-signature`, `${rows[7]!.manifestId} unreadable`].sort(),
    );
    expect(onThreads.twins).toHaveLength(118);
    expect(new Set(onThreads.twins.map((t) => t.previousManifestId)).size).toBe(118);
    const trusted = new Map([[newSigner.keyId, newSigner.publicKey]]);
    for (const twin of onThreads.twins) {
      expect(twin.keyId).toBe(newSigner.keyId);
      const verdict = verifyCoseEnvelope(twin.envelope!, { trustedKeys: trusted, now: NOW });
      expect(verdict.result).toBe('VALID');
      expect(examineEnvelope(twin.envelope!).manifest.get('previous_manifest_id')).toBe(
        twin.previousManifestId,
      );
    }
  });

  it('a key that stays with its custodian signs there, and its failure is the step’s own error', async () => {
    const rows = await batch(40);
    let asked = 0;
    const held: Signer = {
      keyId: newSigner.keyId,
      keyType: 'hsm',
      publicKey: newSigner.publicKey,
      sign: async (m) => {
        asked++;
        return newSigner.sign(m);
      },
    };
    const ok = await signRowsOnPool(rows, facts, held);
    expect(ok.twins).toHaveLength(38);
    expect(asked).toBe(38);

    class TokenGone extends Error {}
    const failing: Signer = { ...held, sign: async () => Promise.reject(new TokenGone('token removed')) };
    await expect(signRowsOnPool(rows, facts, failing)).rejects.toBeInstanceOf(TokenGone);
  });
});
