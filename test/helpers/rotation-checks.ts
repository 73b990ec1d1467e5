import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { activeKey, listKeys } from '../../src/store/keys';
/**
 * What must be true of the world after a rotation, checked from the stores and the custodian, with
 * the interop core as the verifier: the assertions several rotation tests share.
 */

import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { expect, inject } from 'vitest';
import { loadConfig } from '../../src/config';
import { readCrl, trustedKeysFromAnchor, verifyCoseEnvelope, verifyManifest } from '../../src/manifest';
import { pageManifests } from '../../src/store/manifests';
import { streamRevocationLines } from '../../src/store/revocations';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { findTemporalCli } from '../../src/temporal/cli-binary';
import type { RotationEnv } from './rotation-env';
import { workflowBundle } from './temporal';

export async function allManifests(
  env: RotationEnv,
  filter: { keyId?: string; status?: 'active' | 'superseded' | 'revoked' },
) {
  // `text` is '' for a v0.2 manifest, whose copy of record is `envelope`.
  const out: { manifestId: string; text: string; envelope: Uint8Array | null; keyId: string | null }[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await pageManifests(env.db.pool, { ...filter, afterManifestId: after, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page.map((m) => ({ ...m, text: m.text ?? '' })));
    after = page[page.length - 1]!.manifestId;
  }
}

/** The CRL as served from the store, read the way a verifier does: only records signed by `keyIds`. */
export async function acceptedRevocations(env: RotationEnv, trustedKeys: Map<string, Uint8Array>) {
  // Records are signed by the identities' revocation authority (issue 12, ADR-0007), which every
  // signed anchor lists next to the signing keys.
  trustedKeys = new Map(trustedKeys);
  for (const k of await listKeys(env.db.pool, { role: 'revocation' })) trustedKeys.set(k.keyId, k.publicKey);
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
    const ctx = { trustedKeys: trusted, revokedIds, now: new Date() };
    const verdict = m.envelope !== null ? verifyCoseEnvelope(m.envelope, ctx) : verifyManifest(m.text, ctx);
    expect(verdict, m.manifestId).toMatchObject({ result: 'VALID', keyId: signerKeyId });
  }
  return { anchor: anchor!, revokedIds };
}

/**
 * Histories recorded from these runs replay against the current workflow code. With
 * ROTOR_RECORD_HISTORIES=<dir> they are also written there: test/fixtures/histories holds the
 * committed set that `test/rotation/replay-fixtures.test.ts` replays, so a workflow change that
 * breaks determinism for rotations already running fails CI.
 */
export async function expectReplays(handles: WorkflowHandle[]) {
  const histories = await Promise.all(
    handles.map(async (h) => ({ workflowId: h.workflowId, history: await h.fetchHistory() })),
  );
  const recordTo = process.env.ROTOR_RECORD_HISTORIES;
  if (recordTo) {
    // The Temporal CLI writes the proto3 JSON form that `historyFromJSON` reads back.
    mkdirSync(recordTo, { recursive: true });
    const cli = findTemporalCli(loadConfig().temporalTools)!.path;
    for (const h of handles) {
      const json = execFileSync(
        cli,
        [
          'workflow',
          'show',
          '--workflow-id',
          h.workflowId,
          '--output',
          'json',
          '--address',
          inject('temporalAddress'),
        ],
        { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
      );
      writeFileSync(join(recordTo, `${h.workflowId.replace(/[^A-Za-z0-9-]/g, '-')}.json`), json);
    }
  }
  const bundle = await workflowBundle();
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    expect(result.error, `${result.workflowId} replay`).toBeUndefined();
    replayed++;
  }
  expect(replayed).toBe(handles.length);
}

/** The identity's revocation authority: the key_id every CRL record of the identity names. */
export async function revocationKeyId(env: RotationEnv, identity: string): Promise<string> {
  const key = await activeKey(env.db.pool, identity, 'revocation');
  if (!key) throw new Error(`identity ${identity} has no revocation key`);
  return key.keyId;
}
