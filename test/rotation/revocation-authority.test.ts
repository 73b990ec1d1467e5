/**
 * The revocation authority (issue 12, ADR-0007): CRL records are signed by the identity's
 * revocation key, listed in every signed anchor. The runbook's compromise steps run as the
 * rotation's own activities over Postgres, software custody and `rotor serve`: a verifier that
 * still holds the pre-compromise anchor (its max-age has not run out) accepts the compromise's
 * revocations as soon as it refetches the 30-second CRL; and, as the reference SDK's
 * `FileCRL(trusted_signer_key=…)` does, one trusted key checks every record across two rotations.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities';
import { rootSetOf } from '../../src/activities/anchor-signing';
import { signCrlHeaders } from '../../src/activities/crl-meta';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody';
import { createHttpService, type HttpService } from '../../src/http/service';
import { readCrl, type Signer, signRevocation, softwareSigner } from '../../src/manifest';
import { currentRootSet } from '../../src/store/anchor-roots';
import { importManifests, pageManifests } from '../../src/store/manifests';
import { appendRevocations } from '../../src/store/revocations';
import { syntheticManifests } from '../../src/synthetic/manifests';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

const TOKEN = 'check-in-token-for-tests';
const IDENTITY = 'authority';

describe('revocation records signed by the revocation authority', () => {
  let db: TestDatabase;
  let dir: string;
  let custodian: SoftwareCustodian;
  let service: HttpService;
  let baseUrl: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'rotor-authority-'));
    custodian = await openSoftwareCustodian({ dir });
    service = createHttpService({
      // Each step publishes an anchor and reads it back at once: no staleness window.
      anchorRevalidateMs: 0,
      pool: db.pool,
      anchorMaxAgeSeconds: 300,
      crlCacheSeconds: 30,
      checkInToken: TOKEN,
      identity: IDENTITY,
    });
    baseUrl = `http://127.0.0.1:${(await service.listen(0)).port}`;
  });
  afterAll(async () => {
    await service?.close();
    await custodian?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a verifier holding the pre-compromise anchor accepts the compromise revocations; one key checks the CRL across rotations', async () => {
    const steps = createActivities({
      pool: db.pool,
      custodian: async () => custodian,
      settings: { revokedBy: 'urn:rotor:test-security-team' },
    });
    const init = await initIdentity(db.pool, custodian, IDENTITY, 'authority-first');
    const first = init.key.keyId;
    const signer = await custodian.signer(init.key.handle);
    const batch = [];
    let i = 0;
    for await (const text of syntheticManifests(6, signer, { seed: 6 }))
      batch.push({ text, source: `seed:${++i}` });
    await importManifests(db.pool, batch);
    const originals = await pageManifests(db.pool, { keyId: first, status: 'active', limit: 100 });
    expect(originals).toHaveLength(6);

    let clock = Date.now();
    const v = new ReferenceVerifier({
      id: 'holds-v1',
      baseUrl,
      identity: IDENTITY,
      checkInToken: TOKEN,
      root: rootSetOf((await currentRootSet(db.pool, IDENTITY))!),
      now: () => new Date(clock),
    });
    await v.refresh();
    expect(v.anchorVersion).toBe(1);
    expect(originals.map((m) => v.verify(m.text ?? m.envelope!).result)).toEqual(Array(6).fill('VALID'));

    // Compromise (runbook, no overlap): new key, anchor without the old key, every old manifest revoked.
    const second = await steps.generateKey({
      workflowId: 'w',
      runId: 'r1',
      identity: IDENTITY,
      custodian: 'software',
    });
    await steps.setKeyState({ keyId: first, to: 'retiring' });
    await steps.setKeyState({ keyId: second.keyId, to: 'active' });
    const v2 = await steps.switchKeys({
      identity: IDENTITY,
      expectedAnchorVersion: 1,
      activeKeyId: second.keyId,
      transitions: [],
      anchorKeys: [{ keyId: second.keyId, status: 'active' }],
    });
    expect(v2.version).toBe(2);
    const revoked = await steps.revokeChunk({
      oldKeyId: first,
      signingKeyId: second.keyId,
      status: 'active',
      reason: `Key compromise - key_id=${first}`,
      limit: 100,
      batchSize: 50,
    });
    expect(revoked.revoked).toBe(6);

    // 31 s later: the CRL (30 s) is stale, the anchor (300 s) is not; the verifier keeps anchor v1.
    clock += 31_000;
    await v.refresh();
    expect(v.anchorVersion).toBe(1);
    expect(v.crlRejectedCount).toBe(0);
    expect(v.revokedCount).toBe(6);
    expect(originals.map((m) => v.verify(m.text ?? m.envelope!).result)).toEqual(Array(6).fill('REVOKED'));

    // A second rotation, and its revocations: still the same signer for every record.
    const third = await steps.generateKey({
      workflowId: 'w',
      runId: 'r2',
      identity: IDENTITY,
      custodian: 'software',
    });
    await steps.resignChunk({
      workflowId: 'w',
      fromKeyId: first,
      toKeyId: second.keyId,
      status: 'revoked',
      afterManifestId: null,
      limit: 100,
      batchSize: 50,
    });
    await steps.setKeyState({ keyId: second.keyId, to: 'retiring' });
    await steps.setKeyState({ keyId: third.keyId, to: 'active' });
    await steps.resignChunk({
      workflowId: 'w',
      fromKeyId: second.keyId,
      toKeyId: third.keyId,
      status: 'active',
      afterManifestId: null,
      limit: 100,
      batchSize: 50,
    });
    const again = await steps.revokeChunk({
      oldKeyId: second.keyId,
      signingKeyId: third.keyId,
      status: 'superseded',
      reason: `Key rotation - old key_id=${second.keyId}`,
      limit: 100,
      batchSize: 50,
    });
    expect(again.revoked).toBe(6);

    // FileCRL(trusted_signer_key=revocation key): every one of the 12 lines verifies with that one key.
    const crl = await (await fetch(`${baseUrl}/.well-known/agent-manifest/revocation`)).text();
    const report = await readCrl(crl, new Map([[init.revocationKey.keyId, init.revocationKey.publicKey]]));
    expect(report.rejected).toEqual([]);
    expect(report.accepted).toHaveLength(12);
    const signerIds = new Set(
      crl
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).signer_key_id),
    );
    expect([...signerIds]).toEqual([init.revocationKey.keyId]);

    // Refusals. The anchor moves on to the third key; the verifier adopts it once its copy's max-age
    // (300 s) has run out. Whoever holds the compromised first key, or any key the anchor does not
    // list, cannot revoke the current manifests: a forged record is refused and the manifest stays
    // VALID. So is a record that names the revocation key but is signed by another key.
    const v3 = await steps.switchKeys({
      identity: IDENTITY,
      expectedAnchorVersion: 2,
      activeKeyId: third.keyId,
      transitions: [],
      anchorKeys: [{ keyId: third.keyId, status: 'active' }],
    });
    clock += 301_000;
    await v.refresh();
    expect(v.anchorVersion).toBe(v3.version);
    expect(v.crlRejectedCount).toBe(0);
    const current = await pageManifests(db.pool, { keyId: third.keyId, status: 'active', limit: 100 });
    expect(current).toHaveLength(6);
    expect(current.map((m) => v.verify(m.text ?? m.envelope!).result)).toEqual(Array(6).fill('VALID'));
    const stranger = softwareSigner(randomBytes(32));
    const forge = async (manifestId: string, by: Signer, namedSigner = by.keyId) => {
      const { line } = await signRevocation(
        { manifestId, reason: 'forged', revokedBy: 'urn:attacker', revokedAt: new Date(clock) },
        by,
      );
      const named = JSON.stringify({ ...JSON.parse(line), signer_key_id: namedSigner });
      return { manifestId, line: named, signerKeyId: namedSigner, revokedAt: JSON.parse(line).revoked_at };
    };
    await appendRevocations(db.pool, [
      await forge(current[0]!.manifestId, signer),
      await forge(current[1]!.manifestId, stranger),
      await forge(current[2]!.manifestId, stranger, init.revocationKey.keyId),
    ]);
    // Written past the worker, so the CRL's signed header is signed again as the upkeep would:
    // it vouches for the body as served, and each record is still checked on its own.
    await signCrlHeaders(db.pool, async () => custodian, { lifetimeSeconds: 3600 });
    clock += 31_000;
    // They arrive in one delta, which is refused whole (the CRL held is unchanged); the refresh
    // after reads the full list, where each forged line is refused on its own.
    await expect(v.refresh()).rejects.toThrow(/refused whole, 3 of 3 records do not verify/);
    expect(v.revokedCount).toBe(12);
    expect(current.map((m) => v.verify(m.text ?? m.envelope!).result)).toEqual(Array(6).fill('VALID'));
    await v.refresh();
    expect(v.crlRejectedCount).toBe(3);
    expect(v.revokedCount).toBe(12);
    expect(current.map((m) => v.verify(m.text ?? m.envelope!).result)).toEqual(Array(6).fill('VALID'));
  });
});
