import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isJsonObject, parseJson, trustedKeysFromAnchor } from '../../src/manifest';
import { listAudit, verifyAuditChain } from '../../src/store/audit';
import { activeKey, requireKey } from '../../src/store/keys';
import { countManifests, getManifest } from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import {
  acceptedRevocations,
  allManifests,
  expectActiveManifestsValid,
  expectReplays,
  revocationKeyId,
} from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 2000;
/** The workflow is rotation/<identity> on the run's shared Temporal server: a name no other file uses. */
const IDENTITY = 'scheduled-hsm';

describe.skipIf(!inject('softhsm').available)(
  'a full scheduled rotation with SoftHSM custody (Temporal + Postgres + SoftHSM)',
  () => {
    let env: RotationEnv;
    let handle: WorkflowHandle;
    let result: RotationStatus;
    let oldKeyId: string;
    let oldHandle: string;

    beforeAll(async () => {
      env = await createRotationEnv('pkcs11');
      const signer = await env.initIdentity(IDENTITY);
      oldKeyId = signer.keyId;
      oldHandle = (await requireKey(env.db.pool, oldKeyId)).handle;
      await env.seed(IDENTITY, signer, COUNT);
      // A key made yesterday is not due under the 90-day rule; this test is about the timeline.
      handle = await env.start(IDENTITY, 'scheduled', { minKeyAgeDays: 0 });
      result = await env.finish(handle);
    });

    afterAll(async () => {
      await env?.close();
    });

    it('completes every runbook step in order', () => {
      expect(result.phase, result.outcome).toBe('completed');
      expect(result.oldKeyId).toBe(oldKeyId);
      expect(result.newKeyId).toMatch(/^[0-9a-f]{64}$/);
      expect(result.newKeyId).not.toBe(oldKeyId);
      const steps = result.timeline.map((e) => e.step);
      expect(steps).toEqual([
        'preflight',
        'keygen',
        're-sign',
        'publish-anchor',
        'await-adoption',
        'pre-revocation',
        'revoke',
        'decommission',
      ]);
      for (const e of result.timeline) expect(e.actualEnd, e.step).toBeDefined();
      // Durable timers: no step ran before its planned time.
      for (const e of result.timeline)
        expect(Date.parse(e.actualStart!)).toBeGreaterThanOrEqual(Date.parse(e.plannedAt) - 5);
      expect(result.progress.resign).toEqual({ done: COUNT, total: COUNT });
      expect(result.progress.revoke).toEqual({ done: COUNT, total: COUNT });
    });

    it('leaves every active manifest signed by the new HSM key and VALID under the served anchor and CRL', async () => {
      const { anchor } = await expectActiveManifestsValid(env, IDENTITY, result.newKeyId!, COUNT, [oldKeyId]);
      expect(anchor.document.active_key_id).toBe(`sha256:${result.newKeyId}`);
      expect(anchor.document.keys.map((k) => k.key_id)).toEqual([`sha256:${result.newKeyId}`]);
      for (const twin of (await allManifests(env, { status: 'active' })).slice(0, 100)) {
        const doc = parseJson(twin.text);
        if (!isJsonObject(doc)) throw new Error('not an object');
        const signature = doc.get('signature');
        if (!isJsonObject(signature)) throw new Error('no signature block');
        expect(signature.get('key_type')).toBe('hsm');
        expect(signature.get('key_id')).toBe(result.newKeyId);
      }
    });

    it('revokes every old manifest with a record signed by the revocation key, and no twin', async () => {
      const authority = await revocationKeyId(env, IDENTITY);
      expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(COUNT);
      expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'active' })).toBe(0);
      const anchor = await currentTrustAnchor(env.db.pool, IDENTITY);
      const crl = await acceptedRevocations(env, trustedKeysFromAnchor(anchor!.document));
      expect(crl.rejected).toEqual([]);
      expect(crl.accepted).toHaveLength(COUNT);
      const revoked = new Set(crl.accepted.map((r) => r.manifestId));
      for (const m of await allManifests(env, { status: 'active' }))
        expect(revoked.has(m.manifestId)).toBe(false);
      for (const r of crl.accepted.slice(0, 50)) {
        expect(r.signerKeyId).toBe(authority);
        expect(r.reason).toBe(`Key rotation - old key_id=${oldKeyId}`);
        const twin = await getManifest(env.db.pool, r.manifestId);
        expect(twin?.status).toBe('revoked');
      }
    });

    it('drops stale attestations and links every twin to its predecessor', async () => {
      const active = await allManifests(env, { status: 'active' });
      const previous = new Set<string>();
      for (const m of active) {
        const doc = parseJson(m.text);
        if (!isJsonObject(doc)) throw new Error('not an object');
        expect(doc.has('attestation')).toBe(false);
        previous.add(String((doc.get('previous_manifest_id') as string) ?? ''));
      }
      expect(previous.size).toBe(COUNT);
      const old = await allManifests(env, { keyId: oldKeyId });
      expect(new Set(old.map((m) => m.manifestId))).toEqual(previous);
    });

    it('destroys the old private key in the HSM and keeps its public key archived', async () => {
      const old = await requireKey(env.db.pool, oldKeyId);
      expect(old.state).toBe('destroyed');
      expect(old.publicKey).toHaveLength(32);
      expect(old.retentionUntil!.getTime()).toBeGreaterThan(Date.now() + 364 * 86_400_000);
      await expect(env.custodian.signer(oldHandle)).rejects.toThrow(new RegExp(oldKeyId.slice(0, 16)));
      expect((await activeKey(env.db.pool, IDENTITY))?.keyId).toBe(result.newKeyId);
      const description = (await requireKey(env.db.pool, result.newKeyId!)).description as Record<
        string,
        unknown
      >;
      expect(description).toMatchObject({ isHsm: true, generatedOnDevice: true, neverExtractable: true });
    });

    it('writes an intact audit chain with an entry per phase', async () => {
      const chain = await verifyAuditChain(env.db.pool);
      expect(chain.ok).toBe(true);
      const actions = (await listAudit(env.db.pool, { subject: handle.workflowId, limit: 100 })).map(
        (e) => e.action,
      );
      for (const a of [
        'preflight',
        'keygen',
        're-sign',
        'publish-anchor',
        'await-adoption',
        'revoke',
        'decommission',
        'completed',
      ]) {
        expect(actions).toContain(`rotation.${a}`);
      }
    });

    it('replays its history against the current workflow code', async () => {
      await expectReplays([handle]);
    });
  },
);
