/**
 * The v0.1 -> v0.2 migration in a real rotation (Temporal + Postgres, software custody and SoftHSM):
 * a store holding v0.1 JSON manifests and v0.2 COSE envelopes of one key, and a few forged v0.2
 * envelopes (kid naming that key, signed by another), is rotated with the default policy
 * (reissueAs "0.2"). Afterwards every twin is a v0.2 envelope signed by the new key, VALID under the
 * served anchor and CRL and built by the reference SDK's byte rules (checked against the SDK's own
 * envelopes in test/fixtures/vectors/reference-sdk-cose-shared.json); every genuine old manifest is
 * revoked; each forged one is declined (bad-signature) and has no twin. The recount of stragglers
 * follows the same reissueAs rule.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ed from '@noble/ed25519';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signerForKey } from '../../src/activities/deps';
import { keygenActivities } from '../../src/activities/keygen';
import { reissueStragglers } from '../../src/activities/resign';
import type { CustodianKind } from '../../src/custody/custodian';
import {
  convertV01ToV02,
  cosePayload,
  decodeEnvelope,
  encodeSign1,
  examineEnvelope,
  type Signer,
  signCoseRoot,
  sigStructure1,
  softwareSigner,
  trustedKeysFromAnchor,
  verifyCoseEnvelope,
} from '../../src/manifest';
import { listDeclined } from '../../src/store/declined';
import { requireKey } from '../../src/store/keys';
import {
  countManifests,
  getManifest,
  importManifests,
  statsByVersion,
  successorOf,
} from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { syntheticManifests } from '../../src/synthetic/manifests';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { allManifests, expectActiveManifestsValid } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

ed.hashes.sha512 = (m: Uint8Array) => new Uint8Array(createHash('sha512').update(m).digest());

const EACH = 60;
const FORGED = 3;

const sdk = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/vectors/reference-sdk-cose-shared.json'), 'utf8'),
) as {
  key: { public_b64url: string };
  kid_hex: string;
  vectors: { manifest_json: string; payload_hex: string; envelope_hex: string; sdk_result: unknown }[];
};
const fromHex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

/** A CBOR byte string (RFC 8949 §3.1, shortest head), written out here rather than with rotor's encoder. */
function bstr(b: Uint8Array): Buffer {
  const n = b.length;
  const head =
    n < 24 ? [0x40 + n] : n < 0x100 ? [0x58, n] : n < 0x10000 ? [0x59, n >> 8, n & 0xff] : [0x5a, ...u32(n)];
  return Buffer.concat([Buffer.from(head), b]);
}
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/**
 * How an envelope departs from the bytes the reference SDK makes for the same payload and key: the
 * SDK's protected header (its kid swapped for this one), an empty unprotected map, the payload as
 * SDK canonical JSON without the members the envelope leaves out, tag 18 over the four-element
 * array in shortest-form CBOR, and an Ed25519 signature over the Sig_structure (checked with noble,
 * the Sig_structure built here). Empty when it is the SDK's byte for byte.
 */
const sdkProtected = decodeEnvelope(fromHex(sdk.vectors[0]!.envelope_hex)).protectedBytes;
function sdkByteProblems(envelope: Uint8Array, publicKey: Uint8Array, kidHex: string): string[] {
  const problems: string[] = [];
  const e = decodeEnvelope(envelope);
  const want = Buffer.from(Buffer.from(sdkProtected).toString('hex').replace(sdk.kid_hex, kidHex), 'hex');
  if (!want.equals(Buffer.from(e.protectedBytes))) problems.push("protected header is not the SDK's");
  if (e.unprotected.size !== 0) problems.push('unprotected header is not empty');
  const payload = e.payload!;
  const manifest = examineEnvelope(envelope).manifest;
  if (!Buffer.from(cosePayload(manifest).payload).equals(Buffer.from(payload)))
    problems.push('payload is not canonical JSON');
  for (const left of ['signature', 'attestation', 'transparency_log_entry'])
    if (manifest.has(left)) problems.push(`payload carries ${left}`);
  const hitl = manifest.get('hitl_record');
  if (hitl instanceof Map && hitl.has('approvals')) problems.push('payload carries hitl_record.approvals');
  const rebuilt = Buffer.concat([
    Buffer.from([0xd2, 0x84]),
    bstr(e.protectedBytes),
    Buffer.from([0xa0]),
    bstr(payload),
    bstr(e.signature!),
  ]);
  if (!rebuilt.equals(Buffer.from(envelope)))
    problems.push('not tag 18 over [protected, {}, payload, signature]');
  const toBeSigned = Buffer.concat([
    Buffer.from([0x84, 0x6a]),
    Buffer.from('Signature1'),
    bstr(e.protectedBytes),
    Buffer.from([0x40]),
    bstr(payload),
  ]);
  if (!ed.verify(e.signature!, toBeSigned, publicKey)) problems.push('signature does not verify');
  return problems;
}

describe("the reference SDK's byte rules, as checked below", () => {
  it('hold for every envelope the SDK made, and fail for one changed by a byte', () => {
    const pk = Buffer.from(sdk.key.public_b64url, 'base64url');
    for (const v of sdk.vectors) {
      expect(sdkByteProblems(fromHex(v.envelope_hex), pk, sdk.kid_hex)).toEqual([]);
      expect(Buffer.from(decodeEnvelope(fromHex(v.envelope_hex)).payload!).toString('hex')).toBe(
        v.payload_hex,
      );
    }
    const changed = fromHex(sdk.vectors[0]!.envelope_hex);
    changed[changed.length - 1]! ^= 1;
    expect(sdkByteProblems(changed, pk, sdk.kid_hex)).toEqual(['signature does not verify']);
  });
});

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

/**
 * `count` forged v0.2 envelopes: genuine synthetic payloads under a protected header naming the
 * rotated key, signed by a key rotor has never seen. The rotation must decline them, never sign.
 */
async function seedForged(env: RotationEnv, signer: Signer, count: number): Promise<string[]> {
  const attacker = softwareSigner(new Uint8Array(32).fill(0x66));
  const items: { envelope: Uint8Array; source: string }[] = [];
  const ids: string[] = [];
  let i = 0;
  for await (const text of syntheticManifests(count, signer, { seed: 5000 + count })) {
    const { manifest, manifestId } = convertV01ToV02(text);
    const genuine = decodeEnvelope((await signCoseRoot(manifest, signer)).envelope);
    const toBeSigned = sigStructure1(genuine.protectedBytes, genuine.payload!);
    const envelope = encodeSign1({
      protectedBytes: genuine.protectedBytes,
      payload: genuine.payload!,
      signature: await attacker.sign(toBeSigned),
    });
    items.push({ envelope, source: `forged:${++i}` });
    ids.push(manifestId);
  }
  // Forged: they reach the store as a compromised service would put them there (unverified).
  const r = await importManifests(env.db.pool, items, { verify: 'none' });
  expect(r.imported).toBe(count);
  return ids;
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
      // The identity names the workflow (rotation/<identity>) on the run's shared Temporal server.
      const IDENTITY = `migrate-v02-${kind}`;
      let env: RotationEnv;
      let result: RotationStatus;
      let oldKeyId: string;
      let before: Record<string, number>;
      let forged: string[];
      let runId: string;

      beforeAll(async () => {
        env = await createRotationEnv(kind);
        const signer = await env.initIdentity(IDENTITY);
        oldKeyId = signer.keyId;
        await env.seed(IDENTITY, signer, EACH);
        await seedV02(env, signer, EACH);
        forged = await seedForged(env, signer, FORGED);
        before = counts(await statsByVersion(env.db.pool));
        // COMPRESSED keeps v0.1 for the older suites; this one runs the production default. The
        // forged envelopes are declined and listed; they do not hold this rotation.
        const handle = await env.start(IDENTITY, 'personnel', {
          reissueAs: '0.2',
          blockOnUnresignable: false,
        });
        runId = (await handle.describe()).runId;
        result = await env.finish(handle);
      });

      afterAll(async () => {
        await env?.close();
      });

      it('starts from a mix of v0.1 texts and v0.2 envelopes', () => {
        expect(before).toEqual({ '0.1/active': EACH, '0.2/active': EACH + FORGED });
      });

      it('completes, re-issuing every genuine manifest and declining every forged one', () => {
        expect(result.phase, result.outcome).toBe('completed');
        expect(result.unresignableCount).toBe(FORGED);
        expect(result.unresignable.map((u) => u.manifestId).sort()).toEqual([...forged].sort());
        expect(result.progress.resign).toEqual({ done: 2 * EACH, total: 2 * EACH + FORGED });
      });

      it('declines each forged v0.2 original with bad-signature and signs no twin for it', async () => {
        const declined = await listDeclined(env.db.pool, runId);
        expect(declined.map((d) => [d.manifestId, d.code]).sort()).toEqual(
          [...forged].sort().map((id) => [id, 'bad-signature']),
        );
        for (const d of declined) {
          expect(d.reason).toMatch(new RegExp(`^COSE_Sign1 does not verify under ${oldKeyId}: `));
          expect(await successorOf(env.db.pool, d.manifestId)).toBeNull();
          expect((await getManifest(env.db.pool, d.manifestId))!.status).toBe('active');
        }
      });

      it("leaves every twin a v0.2 envelope of the new key, VALID, in the reference SDK's bytes; every genuine old one revoked", async () => {
        const after = counts(await statsByVersion(env.db.pool));
        // The forged envelopes stay as they were (active, of the old key): declined, never re-issued.
        expect(after).toEqual({
          '0.1/revoked': EACH,
          '0.2/active': 2 * EACH + FORGED,
          '0.2/revoked': EACH,
        });
        await expectActiveManifestsValid(env, IDENTITY, result.newKeyId!, 2 * EACH);
        expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(2 * EACH);
        expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'active' })).toBe(FORGED);
        const newKey = await requireKey(env.db.pool, result.newKeyId!);
        const anchor = await currentTrustAnchor(env.db.pool, IDENTITY);
        const trusted = trustedKeysFromAnchor(anchor!.document);
        const active = await allManifests(env, { status: 'active', keyId: result.newKeyId! });
        expect(active).toHaveLength(2 * EACH);
        const previous = new Set<string>();
        for (const m of active) {
          expect(sdkByteProblems(m.envelope!, newKey.publicKey, result.newKeyId!), m.manifestId).toEqual([]);
          expect(verifyCoseEnvelope(m.envelope!, { trustedKeys: trusted, now: new Date() })).toMatchObject({
            result: 'VALID',
            upstream: 'VALID',
            signatureVerified: true,
          });
          expect(m.envelope, m.manifestId).not.toBeNull();
          const e = examineEnvelope(m.envelope!);
          expect(e.keyId).toBe(result.newKeyId);
          expect(e.manifest.get('version')).toBe('0.2');
          expect(e.manifest.get('@context')).toBe('https://manifest.agentrust-io.com/v0.2/context.json');
          previous.add(e.manifest.get('previous_manifest_id') as string);
        }
        const old = await allManifests(env, { keyId: oldKeyId, status: 'revoked' });
        expect(previous).toEqual(new Set(old.map((m) => m.manifestId)));
      });

      it('re-issues stragglers by the same rule: "same" keeps each version, "0.2" migrates v0.1', async () => {
        // Manifests of the (now active) new key that no pass has seen, re-issued by the recount
        // that runs inside publish-anchor and revoke, under a third key of the identity.
        const keygen = keygenActivities(env.deps);
        const key = (runId: string) =>
          keygen.generateKey({ workflowId: 'stragglers', runId, identity: IDENTITY, custodian: kind });
        const from = await signerForKey(env.deps, (await key('stragglers-from')).keyId);
        const to = await key('stragglers-to');
        const versionsOfTwins = async (reissueAs: '0.2' | 'same', seed: number) => {
          const items: ({ text: string } | { envelope: Uint8Array })[] = [];
          const ids: string[] = [];
          for await (const text of syntheticManifests(2, from, { seed })) {
            items.push({ text });
            const { manifest, manifestId } = convertV01ToV02(text);
            // The same document as a v0.2 manifest of its own (a UUID v7 still).
            const id = `${manifestId.slice(0, -4)}beef`;
            manifest.set('manifest_id', id);
            items.push({ envelope: (await signCoseRoot(manifest, from)).envelope });
            ids.push(manifestId, id);
          }
          const imported = await importManifests(
            env.db.pool,
            items.map((c, i) => ({ ...c, source: `straggler:${seed}:${i}` })),
          );
          expect(imported.imported).toBe(4);
          const r = await reissueStragglers(env.deps, {
            workflowId: `stragglers-${reissueAs}`,
            fromKeyId: from.keyId,
            toKeyId: to.keyId,
            reissueAs,
          });
          const twins: string[] = [];
          for (const id of ids) {
            const original = await getManifest(env.db.pool, id);
            const twin = await successorOf(env.db.pool, id);
            expect(twin?.keyId, id).toBe(to.keyId);
            twins.push(`${original!.version}->${twin!.version}`);
          }
          return { resigned: r.resigned, declined: r.declined, twins: twins.sort() };
        };
        expect(await versionsOfTwins('same', 7101)).toEqual({
          resigned: 4,
          declined: 0,
          twins: ['0.1->0.1', '0.1->0.1', '0.2->0.2', '0.2->0.2'],
        });
        expect(await versionsOfTwins('0.2', 7202)).toEqual({
          resigned: 4,
          declined: 0,
          twins: ['0.1->0.2', '0.1->0.2', '0.2->0.2', '0.2->0.2'],
        });
      });
    },
  );
}
