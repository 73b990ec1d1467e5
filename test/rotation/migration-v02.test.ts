/**
 * The v0.1 -> v0.2 migration in a real rotation (Temporal + Postgres, software custody and SoftHSM):
 * a store holding v0.1 JSON manifests and v0.2 COSE envelopes of one key is rotated with the
 * default policy (reissueAs "0.2"); afterwards every active manifest is a v0.2 envelope signed by
 * the new key and VALID under the served anchor and CRL, and every old manifest is revoked.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CustodianKind } from '../../src/custody/custodian';
import { convertV01ToV02, examineEnvelope, type Signer, signCoseRoot } from '../../src/manifest';
import { countManifests, importManifests, statsByVersion } from '../../src/store/manifests';
import { syntheticManifests } from '../../src/synthetic/manifests';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { allManifests, expectActiveManifestsValid } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const EACH = 60;

/** `count` v0.2 manifests signed by `signer`: synthetic documents converted, signed as COSE_Sign1. */
async function seedV02(env: RotationEnv, signer: Signer, count: number): Promise<void> {
  const items: { envelope: Uint8Array; source: string }[] = [];
  let i = 0;
  for await (const text of syntheticManifests(count, signer, { seed: 1000 + count })) {
    const { manifest } = convertV01ToV02(text);
    const { envelope } = await signCoseRoot(manifest, signer);
    items.push({ envelope, source: `seed-v02:${++i}` });
  }
  const r = await importManifests(env.db.pool, items);
  expect(r.rejected).toEqual([]);
  expect(r.imported).toBe(count);
}

function counts(stats: Awaited<ReturnType<typeof statsByVersion>>) {
  const out: Record<string, number> = {};
  for (const s of stats) out[`${s.version}/${s.status}`] = s.count;
  return out;
}

for (const kind of ['software', 'pkcs11'] as CustodianKind[]) {
  const name = kind === 'pkcs11' ? 'SoftHSM' : 'software';
  describe.skipIf(kind === 'pkcs11' && !inject('softhsm').available)(
    `migration to manifest v0.2 in a rotation of a mixed store (${name} custody)`,
    () => {
      let env: RotationEnv;
      let result: RotationStatus;
      let oldKeyId: string;
      let before: Record<string, number>;

      beforeAll(async () => {
        env = await createRotationEnv(kind);
        const signer = await env.initIdentity('default');
        oldKeyId = signer.keyId;
        await env.seed('default', signer, EACH);
        await seedV02(env, signer, EACH);
        before = counts(await statsByVersion(env.db.pool));
        // COMPRESSED keeps v0.1 for the older suites; this one runs the production default.
        const handle = await env.start('default', 'personnel', { reissueAs: '0.2' });
        result = await env.finish(handle);
      });

      afterAll(async () => {
        await env?.close();
      });

      it('starts from a mix of v0.1 texts and v0.2 envelopes', () => {
        expect(before).toEqual({ '0.1/active': EACH, '0.2/active': EACH });
      });

      it('completes, re-issuing every manifest', () => {
        expect(result.phase, result.outcome).toBe('completed');
        expect(result.unresignable).toEqual([]);
        expect(result.progress.resign).toEqual({ done: 2 * EACH, total: 2 * EACH });
      });

      it('leaves every active manifest a v0.2 envelope of the new key, VALID; every old one revoked', async () => {
        const after = counts(await statsByVersion(env.db.pool));
        expect(after).toEqual({ '0.1/revoked': EACH, '0.2/active': 2 * EACH, '0.2/revoked': EACH });
        await expectActiveManifestsValid(env, 'default', result.newKeyId!, 2 * EACH, [oldKeyId]);
        expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(2 * EACH);
        const active = await allManifests(env, { status: 'active' });
        const previous = new Set<string>();
        for (const m of active) {
          expect(m.envelope, m.manifestId).not.toBeNull();
          const e = examineEnvelope(m.envelope!);
          expect(e.keyId).toBe(result.newKeyId);
          expect(e.manifest.get('version')).toBe('0.2');
          expect(e.manifest.get('@context')).toBe('https://manifest.agentrust-io.com/v0.2/context.json');
          previous.add(e.manifest.get('previous_manifest_id') as string);
        }
        const old = await allManifests(env, { keyId: oldKeyId });
        expect(previous).toEqual(new Set(old.map((m) => m.manifestId)));
      });
    },
  );
}
