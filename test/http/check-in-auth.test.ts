/**
 * Issue 12, point 4: authenticated adoption. A registered verifier checks in with a credential of
 * its own, bound to its id and identity; it reports the SHA-256 of the signed anchor it holds and
 * the registry derives the version from it. Against the real `rotor serve` service and Postgres,
 * with an identity whose signed anchors were published by the real activities.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian } from '../../src/custody/software';
import { createHttpService, type HttpService } from '../../src/http/service';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { getVerifier, registerVerifier, retireVerifier } from '../../src/store/verifiers';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

const SHARED = 'shared-fleet-token-for-tests';
let db: TestDatabase;
let service: HttpService;
let base: string;
let keyDir: string;
let anchorSha: string;
let keyId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  keyDir = mkdtempSync(join(tmpdir(), 'rotor-checkin-auth-'));
  const custodian = await openSoftwareCustodian({ dir: keyDir });
  const made = await initIdentity(db.pool, custodian, 'payments', 'test-payments');
  keyId = made.key.keyId;
  await initIdentity(db.pool, custodian, 'billing', 'test-billing');
  const anchor = await currentTrustAnchor(db.pool, 'payments');
  anchorSha = anchor!.jwsSha256!;
  service = createHttpService({
    pool: db.pool,
    anchorMaxAgeSeconds: 60,
    checkInToken: SHARED,
    identity: 'payments',
  });
  base = `http://127.0.0.1:${(await service.listen(0)).port}`;
});
afterAll(async () => {
  await service?.close();
  await db?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

const checkIn = (id: string, token: string, body: Record<string, unknown>) =>
  fetch(`${base}/v1/verifiers/${encodeURIComponent(id)}/check-in`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ trusted_key_ids: [keyId], valid_counts: {}, ...body }),
  });

async function refused(res: Response, status: number): Promise<string> {
  expect(res.status).toBe(status);
  return ((await res.json()) as { error_message: string }).error_message;
}

describe('authenticated adoption (rotor serve + Postgres)', () => {
  it('a registered verifier checks in with its own credential; the version comes from the anchor hash', async () => {
    const reg = await registerVerifier(db.pool, { verifierId: 'eu-1', identity: 'payments' });
    const res = await checkIn('eu-1', reg.credential, { anchor_sha256: anchorSha });
    expect(res.status).toBe(200);
    expect(res.headers.get('warning')).toBeNull();
    expect(await getVerifier(db.pool, 'eu-1')).toMatchObject({
      identity: 'payments',
      anchorVersion: 1,
      anchorSha256: anchorSha,
      checkedIn: true,
    });
  });

  it('refuses impersonation: another verifier’s credential, or the shared token, on a registered id', async () => {
    const a = await registerVerifier(db.pool, { verifierId: 'us-1', identity: 'payments' });
    const b = await registerVerifier(db.pool, { verifierId: 'us-2', identity: 'payments' });
    expect(await refused(await checkIn('us-1', b.credential, { anchor_sha256: anchorSha }), 401)).toBe(
      "the credential is not verifier us-1's",
    );
    expect(await refused(await checkIn('us-1', SHARED, { anchor_sha256: anchorSha }), 401)).toBe(
      "the credential is not verifier us-1's",
    );
    // Neither attempt wrote anything: us-1 has still never checked in.
    expect(await getVerifier(db.pool, 'us-1')).toMatchObject({ checkedIn: false, anchorVersion: 0 });
    expect((await checkIn('us-1', a.credential, { anchor_sha256: anchorSha })).status).toBe(200);
  });

  it('refuses an identity switch, a chosen version, an unknown anchor and a missing hash, and writes nothing', async () => {
    const reg = await registerVerifier(db.pool, { verifierId: 'ap-1', identity: 'payments' });
    const billing = (await currentTrustAnchor(db.pool, 'billing'))!.jwsSha256!;
    expect(
      await refused(
        await checkIn('ap-1', reg.credential, { identity: 'billing', anchor_sha256: billing }),
        403,
      ),
    ).toBe('verifier ap-1 is registered for identity payments, not billing');
    // billing's anchor hash names no anchor of payments.
    expect(await refused(await checkIn('ap-1', reg.credential, { anchor_sha256: billing }), 400)).toMatch(
      /^anchor_sha256 [0-9a-f]{16}… names no anchor of identity payments$/,
    );
    expect(await refused(await checkIn('ap-1', reg.credential, { anchor_version: 7 }), 400)).toBe(
      'a registered verifier reports anchor_sha256, the SHA-256 of the signed anchor it holds',
    );
    expect(
      await refused(
        await checkIn('ap-1', reg.credential, { anchor_version: 7, anchor_sha256: anchorSha }),
        400,
      ),
    ).toBe('anchor_version 7 does not match anchor_sha256 (version 1)');
    expect(await refused(await checkIn('ap-1', reg.credential, { anchor_sha256: 'ABC' }), 400)).toMatch(
      /^anchor_sha256 must be the lowercase hex SHA-256/,
    );
    expect(await getVerifier(db.pool, 'ap-1')).toMatchObject({ identity: 'payments', checkedIn: false });
  });

  it('a retired verifier can no longer check in', async () => {
    const reg = await registerVerifier(db.pool, { verifierId: 'gone-1', identity: 'payments' });
    await retireVerifier(db.pool, 'gone-1', 'host decommissioned');
    expect(await refused(await checkIn('gone-1', reg.credential, { anchor_sha256: anchorSha }), 401)).toBe(
      'verifier gone-1 is retired',
    );
  });

  it('an unregistered verifier may still use the shared token this release, with a warning', async () => {
    const res = await checkIn('legacy-1', SHARED, { anchor_version: 1 });
    expect(res.status).toBe(200);
    expect(res.headers.get('warning')).toMatch(/register this verifier/);
    expect(await refused(await checkIn('legacy-2', 'not-the-token', { anchor_version: 1 }), 401)).toBe(
      'the bearer token is not valid',
    );
  });
});
