/**
 * What must be true of the world after a rotation, checked from the stores and the custodian, with
 * the interop core as the verifier: the assertions several rotation tests share.
 */

import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { expect } from 'vitest';
import { readCrl, trustedKeysFromAnchor, verifyManifest } from '../../src/manifest';
import { pageManifests } from '../../src/store/manifests';
import { streamRevocationLines } from '../../src/store/revocations';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import type { RotationEnv } from './rotation-env';
import { workflowBundle } from './temporal';

export async function allManifests(
  env: RotationEnv,
  filter: { keyId?: string; status?: 'active' | 'superseded' | 'revoked' },
) {
  const out: { manifestId: string; text: string; keyId: string | null }[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await pageManifests(env.db.pool, { ...filter, afterManifestId: after, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1]!.manifestId;
  }
}

/** The CRL as served from the store, read the way a verifier does: only records signed by `keyIds`. */
export async function acceptedRevocations(env: RotationEnv, trustedKeys: Map<string, Uint8Array>) {
  const lines: string[] = [];
  for await (const line of streamRevocationLines(env.db.pool)) lines.push(line);
  return readCrl(lines, trustedKeys);
}

/**
 * The identity's manifests are all active under `signerKeyId` and VALID under its current anchor
 * and CRL; none of its `otherKeyIds` still has an active manifest.
 */
export async function expectActiveManifestsValid(
  env: RotationEnv,
  identity: string,
  signerKeyId: string,
  count: number,
  otherKeyIds: string[] = [],
) {
  const anchor = await currentTrustAnchor(env.db.pool, identity);
  expect(anchor).not.toBeNull();
  const trusted = trustedKeysFromAnchor(anchor!.document);
  const crl = await acceptedRevocations(env, trusted);
  const revokedIds = new Set(crl.accepted.map((r) => r.manifestId));
  for (const other of otherKeyIds)
    expect(await allManifests(env, { status: 'active', keyId: other })).toHaveLength(0);
  const active = await allManifests(env, { status: 'active', keyId: signerKeyId });
  expect(active).toHaveLength(count);
  for (const m of active) {
    expect(m.keyId).toBe(signerKeyId);
    const verdict = verifyManifest(m.text, { trustedKeys: trusted, revokedIds, now: new Date() });
    expect(verdict, m.manifestId).toMatchObject({ result: 'VALID', keyId: signerKeyId });
  }
  return { anchor: anchor!, revokedIds };
}

/** Histories recorded from these runs replay against the current workflow code. */
export async function expectReplays(handles: WorkflowHandle[]) {
  const histories = await Promise.all(
    handles.map(async (h) => ({ workflowId: h.workflowId, history: await h.fetchHistory() })),
  );
  const bundle = await workflowBundle();
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    expect(result.error, `${result.workflowId} replay`).toBeUndefined();
    replayed++;
  }
  expect(replayed).toBe(handles.length);
}
