/**
 * Issue 10's acceptance: a real rotation (Temporal dev server, Postgres, software custody and
 * SoftHSM) over a store holding forged, expired, near-expiry, foreign-key, schema-invalid and
 * valid manifests of the old key. Only the valid ones are re-issued; every twin verifies under the
 * new key and satisfies the SDK's validity window; the declined ones are named with reasons in the
 * status, the `rotation_declined` table and the audit log; by policy they hold the rotation on
 * the `unresignable` pause before the anchor changes, and `rotor rotate unresignable` pages all of
 * them; a near-expiry manifest stays VALID until its own expiry; and an old-key manifest imported
 * mid-rotation is re-issued and revoked.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CustodianKind } from '../../src/custody/custodian';
import {
  manifestIndexFields,
  manifestSchemaProblems,
  parseJson,
  type Signer,
  signManifest,
  trustedKeysFromAnchor,
  uuidv7,
  verifyManifest,
} from '../../src/manifest';
import { listAudit } from '../../src/store/audit';
import { listDeclined } from '../../src/store/declined';
import { getManifest, importManifests, successorOf } from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { type RotationStatus, resumeUpdate } from '../../src/workflows/rotation-api';
import { acceptedRevocations, allManifests, expectReplays } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { validUnsigned } from '../manifest/vectors';

const VALID = 40;
const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function signedBy(signer: Signer, overrides: Record<string, unknown>): Promise<string> {
  const now = Date.now();
  const m = validUnsigned({
    manifest_id: uuidv7(new Date()),
    issued_at: utc(now - DAY),
    expires_at: utc(now + 30 * DAY),
    ...overrides,
  });
  return (await signManifest(JSON.stringify(m), signer, { signedAt: new Date(now - DAY) })).text;
}

/** A row written straight into the store, the way someone holding database credentials could. */
async function writeRow(env: RotationEnv, text: string, keyIdColumn: string) {
  const f = manifestIndexFields(text);
  await env.db.pool.query(
    `INSERT INTO manifests (manifest_id, agent_id, key_id, issued_at, expires_at, text, status)
     VALUES ($1, $2, $3, $4, $5, $6, 'active')`,
    [f.manifestId, f.agentId, keyIdColumn, f.issuedAt, f.expiresAt, text],
  );
  return f.manifestId;
}

/** `rotor rotate unresignable` as an operator runs it (it reads Postgres only). */
function rotorUnresignable(env: RotationEnv, ...args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [ROTOR, 'rotate', 'unresignable', ...args],
      { env: { ...process.env, DATABASE_URL: env.db.url }, cwd: ROOT, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

function suite(kind: CustodianKind) {
  let env: RotationEnv;
  const handles: WorkflowHandle[] = [];
  beforeAll(async () => {
    env = await createRotationEnv(kind);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('re-issues only what verifies, names the rest, and keeps every manifest in force until its expiry', async () => {
    const identity = `vbt-${kind}`;
    const old = await env.initIdentity(identity);
    const other = await env.initIdentity(`${identity}-other`);
    await env.seed(identity, old, VALID);
    const now = Date.now();

    // Forged: a garbage signature_value under the old key's key_id (the signing-oracle attack).
    const forgedText = JSON.parse(await signedBy(old, {}));
    forgedText.signature.signature_value = Buffer.alloc(64, 0x42).toString('base64url');
    const forged = await writeRow(env, JSON.stringify(forgedText), old.keyId);
    // Tampered after signing (an attacker's edit to a real manifest).
    const tampered = await writeRow(
      env,
      (await signedBy(old, {})).replace(
        '"spiffe://trust.example/agent/kyc/prod"',
        '"spiffe://trust.example/agent/evil"',
      ),
      old.keyId,
    );
    // Foreign: another identity's key, filed under the old key's column.
    const foreign = await writeRow(env, await signedBy(other, {}), old.keyId);
    // Schema-invalid (an extra input the SDK refuses), properly signed by the old key.
    const schemaBad = await writeRow(
      env,
      await signedBy(old, {
        log_retention: { minimum_retention_days: 180, retention_enforced_by: 'x', ttl_days: 3 },
      }),
      old.keyId,
    );
    // Expired but still marked active.
    const expired = await writeRow(
      env,
      await signedBy(old, { issued_at: utc(now - 40 * DAY), expires_at: utc(now - DAY) }),
      old.keyId,
    );
    // Near expiry: 40 minutes left, under the SDK's 1-hour window for a twin issued now.
    const nearExpiry = await writeRow(
      env,
      await signedBy(old, { issued_at: utc(now - DAY), expires_at: utc(now + 40 * 60_000) }),
      old.keyId,
    );
    const declinedIds = [forged, tampered, foreign, schemaBad, expired, nearExpiry];

    // The policy's default (blockOnUnresignable): the declined hold the rotation before the anchor changes.
    const handle = await env.start(identity, 'personnel', {
      minKeyAgeDays: 0,
      resignAtSeconds: 1,
      adoptBySeconds: 2,
      revokeAtSeconds: 6,
      decommissionAtSeconds: 7,
    });
    handles.push(handle);
    const held = await env.waitForStatus(
      handle,
      'the unresignable pause',
      (s) => s.pause?.kind === 'unresignable',
      120_000,
    );
    expect(held.timeline.find((e) => e.step === 're-sign')?.actualEnd).toBeDefined();
    expect(held.timeline.find((e) => e.step === 'publish-anchor')?.actualStart).toBeUndefined();
    expect(held.unresignableCount).toBe(declinedIds.length);
    expect(held.blockers).toEqual([
      `${declinedIds.length} manifest(s) could not be re-issued; the status lists ${declinedIds.length}, rotor rotate unresignable lists all`,
    ]);
    // Nothing of the old key is superseded while held: its anchor is unchanged.
    expect((await currentTrustAnchor(env.db.pool, identity))!.version).toBe(held.anchorVersion);

    // The operator's full list, paged from rotation_declined: 4, then the other 2 after the last.
    const page1 = await rotorUnresignable(env, identity, '--limit', '4', '--json');
    expect(page1.code, page1.stderr).toBe(0);
    const first = page1.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { manifestId: string; code: string });
    expect(first).toHaveLength(4);
    const last = first[3]!.manifestId;
    expect(page1.stderr).toContain(`more: rotor rotate unresignable ${identity} --after ${last}\n`);
    const page2 = await rotorUnresignable(env, identity, '--after', last);
    expect(page2.code, page2.stderr).toBe(0);
    const second = page2.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(second).toHaveLength(2);
    expect(new Set([...first.map((r) => r.manifestId), ...second.map((r) => r[0])])).toEqual(
      new Set(declinedIds),
    );

    // Mid-rotation: after the re-sign pass, while held, a valid manifest of the old key arrives.
    const late = await signedBy(old, {});
    expect((await importManifests(env.db.pool, [{ text: late, source: 'late.jsonl:1' }])).imported).toBe(1);
    const lateId = JSON.parse(late).manifest_id as string;
    // The declined are understood: a plain resume goes on (--force is for verifier gates only).
    await handle.executeUpdate(resumeUpdate, {
      args: [{ reason: 'declined manifests reviewed', by: 'test@rotor' }],
    });

    const result: RotationStatus = await env.finish(handle);
    expect(result.phase).toBe('completed');
    const newKeyId = result.newKeyId!;

    // The declined: counted and sampled in the status, every one in the table and the audit log.
    expect(result.unresignableCount).toBe(declinedIds.length);
    expect(new Set(result.unresignable.map((u) => u.manifestId))).toEqual(new Set(declinedIds));
    const runId = (await handle.describe()).runId;
    const rows = await listDeclined(env.db.pool, runId);
    const byId = new Map(rows.map((r) => [r.manifestId, r]));
    expect(new Set(byId.keys())).toEqual(new Set(declinedIds));
    expect(byId.get(forged)).toMatchObject({
      code: 'bad-signature',
      reason: expect.stringMatching(`^signature does not verify under ${old.keyId}`),
    });
    expect(byId.get(tampered)!.code).toBe('bad-signature');
    expect(byId.get(foreign)).toMatchObject({
      code: 'foreign-key',
      reason: expect.stringContaining(other.keyId),
    });
    expect(byId.get(schemaBad)).toMatchObject({
      code: 'schema',
      reason: expect.stringMatching(/log_retention\.ttl_days/),
    });
    expect(byId.get(expired)!.code).toBe('expired');
    expect(byId.get(nearExpiry)).toMatchObject({
      code: 'expiring',
      reason: expect.stringMatching(/^expires within the SDK's 1-hour window/),
    });
    const audited = (await listAudit(env.db.pool, { subject: handle.workflowId }))
      .filter((e) => e.action === 'rotation.declined')
      .flatMap((e) => (e.details as { declined: { manifestId: string; reason: string }[] }).declined);
    expect(new Set(audited.map((d) => d.manifestId))).toEqual(new Set(declinedIds));
    for (const d of audited) expect(d.reason).toBe(byId.get(d.manifestId)!.reason);

    // Nothing declined was signed, superseded or revoked.
    for (const id of declinedIds) {
      expect(await successorOf(env.db.pool, id), id).toBeNull();
      expect((await getManifest(env.db.pool, id))!.status, id).toBe('active');
    }

    // Every twin: signed by the new key, VALID under the final anchor and CRL, inside the SDK window.
    const anchor = (await currentTrustAnchor(env.db.pool, identity))!;
    const trusted = trustedKeysFromAnchor(anchor.document, { now: new Date() });
    const crl = await acceptedRevocations(env, trusted);
    const revokedIds = new Set(crl.accepted.map((r) => r.manifestId));
    const twins = await allManifests(env, { status: 'active', keyId: newKeyId });
    expect(twins).toHaveLength(VALID + 1);
    for (const t of twins) {
      const verdict = verifyManifest(t.text, { trustedKeys: trusted, revokedIds, now: new Date() });
      expect(verdict, t.manifestId).toMatchObject({ result: 'VALID', keyId: newKeyId });
      expect(manifestSchemaProblems(parseJson(t.text))).toEqual([]);
      const m = JSON.parse(t.text);
      expect(Date.parse(m.expires_at) - Date.parse(m.issued_at)).toBeGreaterThanOrEqual(HOUR);
      expect(m.transparency_log_entry).toBeUndefined();
    }

    // No orphans: the late manifest got a twin and was revoked with the rest.
    expect(await successorOf(env.db.pool, lateId)).not.toBeNull();
    expect((await getManifest(env.db.pool, lateId))!.status).toBe('revoked');
    expect(revokedIds.has(lateId)).toBe(true);

    // No manifest lost its validity before its own expiry: the near-expiry one is still VALID
    // (the old key is verify-only in the anchor until it expires), the expired one is EXPIRED,
    // not REVOKED; none of the declined is revoked.
    const oldEntry = anchor.document.keys.find((k) => k.key_id === `sha256:${old.keyId}`);
    expect(oldEntry).toMatchObject({ status: 'verify-only' });
    expect(Date.parse(oldEntry!.valid_until!)).toBe(
      Date.parse(JSON.parse((await getManifest(env.db.pool, nearExpiry))!.text!).expires_at),
    );
    const near = verifyManifest((await getManifest(env.db.pool, nearExpiry))!.text!, {
      trustedKeys: trusted,
      revokedIds,
      now: new Date(),
    });
    expect(near).toMatchObject({ result: 'VALID', keyId: old.keyId });
    const gone = verifyManifest((await getManifest(env.db.pool, expired))!.text!, {
      trustedKeys: trusted,
      revokedIds,
      now: new Date(),
    });
    expect(gone.result).toBe('EXPIRED');
    for (const id of declinedIds) expect(revokedIds.has(id), id).toBe(false);
  }, 600_000);

  it('the rotation histories replay against the current workflow code', async () => {
    await expectReplays(handles);
  });
}

describe('verify before trust: a rotation over forged, expired, near-expiry, foreign and valid manifests (software custody)', () => {
  suite('software');
});

describe.skipIf(!inject('softhsm').available)(
  'verify before trust: the same rotation with SoftHSM custody',
  () => {
    suite('pkcs11');
  },
);
