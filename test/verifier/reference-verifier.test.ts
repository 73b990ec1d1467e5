/**
 * The reference verifier against the real HTTP service over a database of this file's own: it
 * keeps the anchor and CRL for their max-age, revalidates the anchor with If-None-Match and asks
 * for the CRL's delta after its head, verifies with the interop core, and its check-ins land in
 * the verifier registry.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpService, type HttpService } from '../../src/http/service';
import { type Signer, signManifest, signRevocation, softwareSigner } from '../../src/manifest';
import { appendRevocations } from '../../src/store/revocations';
import { publishTrustAnchor } from '../../src/store/trust-anchors';
import { getVerifier } from '../../src/store/verifiers';
import {
  CRL_PATH,
  ReferenceVerifier,
  SIGNED_TRUST_ANCHOR_PATH as TRUST_ANCHOR_PATH,
} from '../../src/verifier/reference-verifier';
import { pinnedRootOf, testAnchorSigning } from '../helpers/anchor-signing';
import { runRotor } from '../helpers/cli';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { validUnsigned } from '../manifest/vectors';

const TOKEN = 'check-in-token-for-tests';
const ANCHOR_MAX_AGE = 300;
const CRL_MAX_AGE = 30;
const IDENTITY = 'default';

const keyA = softwareSigner(new Uint8Array(32).fill(11));
const keyB = softwareSigner(new Uint8Array(32).fill(12));
const outsider = softwareSigner(new Uint8Array(32).fill(13));
const rootKey = softwareSigner(new Uint8Array(32).fill(14));
const root = pinnedRootOf([rootKey]);
const signing = testAnchorSigning([rootKey]);
const rootB64 = Buffer.from(rootKey.publicKey).toString('base64url');

let seq = 0;
function unsignedManifest(): { id: string; text: string } {
  seq++;
  const id = `0190b6e0-0000-7000-8000-${seq.toString(16).padStart(12, '0')}`;
  // Schema-valid (the verifier gives the SDK's verdict, schema included), in force at the test's clock.
  const text = JSON.stringify(
    validUnsigned({
      manifest_id: id,
      agent_id: `spiffe://trust.example/agent/a${seq}`,
      issued_at: '2026-06-01T00:00:00Z',
      expires_at: '2027-05-01T00:00:00Z',
    }),
  );
  return { id, text };
}

async function signedManifest(signer: Signer): Promise<{ id: string; text: string }> {
  const m = unsignedManifest();
  const { text } = await signManifest(m.text, signer, { signedAt: new Date('2026-06-05T10:00:00Z') });
  return { id: m.id, text };
}

function anchorKey(signer: Signer) {
  return { keyId: signer.keyId, publicKey: signer.publicKey, validFrom: '2026-01-01T00:00:00Z' };
}

/** What reached the server, per path, with the status it answered. */
interface Seen {
  path: string;
  query: string;
  status: number;
  ifNoneMatch: string | undefined;
}

describe('ReferenceVerifier', () => {
  let db: TestDatabase;
  let service: HttpService;
  let baseUrl: string;
  const seen: Seen[] = [];
  let clockMs = Date.parse('2026-11-01T12:00:00Z');
  const now = () => new Date(clockMs);
  const fetchesOf = (path: string) => seen.filter((s) => s.path === path);

  beforeAll(async () => {
    db = await createTestDatabase();
    await publishTrustAnchor(
      db.pool,
      IDENTITY,
      { activeKeyId: keyA.keyId, keys: [anchorKey(keyA)] },
      signing,
    );
    service = createHttpService({
      // Each step publishes an anchor and reads it back at once: no staleness window.
      anchorRevalidateMs: 0,
      pool: db.pool,
      anchorMaxAgeSeconds: ANCHOR_MAX_AGE,
      crlCacheSeconds: CRL_MAX_AGE,
      checkInToken: TOKEN,
      identity: IDENTITY,
    });
    service.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      res.on('finish', () =>
        seen.push({
          path: (req.url ?? '').split('?')[0]!,
          query: (req.url ?? '').split('?')[1] ?? '',
          status: res.statusCode,
          ifNoneMatch: req.headers['if-none-match'],
        }),
      );
    });
    const { port } = await service.listen(0);
    baseUrl = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await service?.close();
    await db?.drop();
  });

  it('fetches the anchor and the CRL, keeps them for max-age, then revalidates the anchor with If-None-Match and asks for the CRL delta', async () => {
    const v = new ReferenceVerifier({ id: 'cache-probe', baseUrl, checkInToken: TOKEN, now, root });
    expect(v.anchorVersion).toBe(0);
    await v.refresh();
    expect(v.anchorVersion).toBe(1);
    expect(v.trustedKeyIds).toEqual([keyA.keyId]);
    expect(fetchesOf(TRUST_ANCHOR_PATH)).toHaveLength(1);
    expect(fetchesOf(CRL_PATH)).toHaveLength(1);

    // A new anchor is published, but the held copy is still fresh: nothing is fetched.
    await publishTrustAnchor(
      db.pool,
      IDENTITY,
      { activeKeyId: keyB.keyId, keys: [anchorKey(keyA), anchorKey(keyB)] },
      signing,
    );
    clockMs += (CRL_MAX_AGE - 1) * 1000;
    await v.refresh();
    expect(fetchesOf(TRUST_ANCHOR_PATH)).toHaveLength(1);
    expect(fetchesOf(CRL_PATH)).toHaveLength(1);
    expect(v.anchorVersion).toBe(1);

    // The CRL's 30 s have run out, the anchor's 300 s have not: only the CRL is refreshed, as a
    // delta after the head the full list named (README "CRL deltas"): nothing new, an empty 200.
    clockMs += 2000;
    await v.refresh();
    expect(fetchesOf(TRUST_ANCHOR_PATH)).toHaveLength(1);
    const crl = fetchesOf(CRL_PATH);
    expect(crl).toHaveLength(2);
    expect(crl[0]!.query).toBe('');
    expect(crl[1]!.query).toBe(`since=${v.crlHead}`);
    expect(crl[1]!.status).toBe(200);
    expect(v.crlTraffic).toEqual({ bytes: 0, requests: 2 });
    expect(v.anchorVersion).toBe(1);

    // Past the anchor's max-age: revalidated, changed (200), version 2 adopted.
    clockMs += ANCHOR_MAX_AGE * 1000;
    await v.refresh();
    const anchor = fetchesOf(TRUST_ANCHOR_PATH);
    expect(anchor).toHaveLength(2);
    expect(anchor[1]!.ifNoneMatch).toBeDefined();
    expect(anchor[1]!.status).toBe(200);
    expect(v.anchorVersion).toBe(2);
    expect(v.trustedKeyIds).toEqual([keyA.keyId, keyB.keyId].sort());

    // Past it again with nothing new: a 304, and the version held stays.
    clockMs += (ANCHOR_MAX_AGE + 1) * 1000;
    await v.refresh();
    expect(fetchesOf(TRUST_ANCHOR_PATH).at(-1)!.status).toBe(304);
    expect(v.anchorVersion).toBe(2);
  });

  it('answers VALID for a key in the anchor, INVALID for one outside it, REVOKED for a revoked manifest', async () => {
    const good = await signedManifest(keyB);
    const foreign = await signedManifest(outsider);
    const revoked = await signedManifest(keyA);
    const { line } = await signRevocation(
      {
        manifestId: revoked.id,
        reason: `Key rotation - old key_id=${keyA.keyId}`,
        revokedBy: 'spiffe://trust.example/security-team',
        revokedAt: new Date('2026-11-01T12:00:00Z'),
      },
      keyB,
    );
    const record = JSON.parse(line) as { revoked_at: string };
    await appendRevocations(db.pool, [
      { manifestId: revoked.id, line, signerKeyId: keyB.keyId, revokedAt: record.revoked_at },
    ]);

    const v = new ReferenceVerifier({ id: 'verdicts', baseUrl, checkInToken: TOKEN, now, root });
    expect(v.verify(good.text).result).toBe('INVALID'); // nothing held yet
    await v.refresh();
    expect(v.revokedCount).toBe(1);

    expect(v.verify(good.text)).toMatchObject({ result: 'VALID', keyId: keyB.keyId });
    const foreignVerdict = v.verify(foreign.text);
    expect(foreignVerdict).toMatchObject({ result: 'INVALID', keyId: outsider.keyId });
    expect(foreignVerdict.reason).toContain(outsider.keyId);
    expect(v.verify(revoked.text)).toMatchObject({ result: 'REVOKED', keyId: keyA.keyId });
    // An unrevoked manifest of key A is still good during the overlap.
    expect(v.verify((await signedManifest(keyA)).text)).toMatchObject({ result: 'VALID', keyId: keyA.keyId });
    expect(v.validCounts).toEqual({ [keyA.keyId]: 1, [keyB.keyId]: 1 });
  });

  it('checks in: the registry holds its anchor version, trusted keys and VALID counts', async () => {
    const v = new ReferenceVerifier({
      id: 'spiffe://trust.example/ns/demo/verifier-1',
      baseUrl,
      checkInToken: TOKEN,
      now,
      root,
    });
    await v.refresh();
    const m = await signedManifest(keyB);
    v.verify(m.text);
    v.verify(m.text);
    await v.checkIn();
    const record = await getVerifier(db.pool, 'spiffe://trust.example/ns/demo/verifier-1');
    expect(record).toMatchObject({
      identity: IDENTITY,
      anchorVersion: 2,
      trustedKeyIds: [keyA.keyId, keyB.keyId].sort(),
      validCounts: { [keyB.keyId]: 2 },
    });
  });

  it('reports a refused check-in with the status and the service’s reason', async () => {
    const v = new ReferenceVerifier({ id: 'wrong-token', baseUrl, checkInToken: 'not-the-token', now, root });
    await v.refresh();
    await expect(v.checkIn()).rejects.toThrow(/refused with 401: the bearer token is not valid/);
    expect(await getVerifier(db.pool, 'wrong-token')).toBeNull();
  });

  it('keeps what it holds when the service is unreachable, and says where it failed', async () => {
    const v = new ReferenceVerifier({ id: 'offline', baseUrl, checkInToken: TOKEN, now, root });
    await v.refresh();
    const held = v.anchorVersion;
    const other = createHttpService({ pool: db.pool, anchorMaxAgeSeconds: 1, identity: IDENTITY });
    const { port } = await other.listen(0);
    await other.close();
    const gone = new ReferenceVerifier({
      id: 'offline',
      baseUrl: `http://127.0.0.1:${port}`,
      checkInToken: TOKEN,
      now,
      root,
    });
    await expect(gone.refresh()).rejects.toThrow(`cannot reach http://127.0.0.1:${port}${TRUST_ANCHOR_PATH}`);
    expect(gone.anchorVersion).toBe(0);
    expect(v.anchorVersion).toBe(held);
  });

  it('runs refresh, verify and check-in in a loop until stopped', async () => {
    const manifest = await signedManifest(keyA);
    const v = new ReferenceVerifier({ id: 'looper', baseUrl, checkInToken: TOKEN, now, root });
    const errors: unknown[] = [];
    let cycles = 0;
    const loop = v.runLoop({
      intervalMs: 10,
      manifests: async () => [manifest.text],
      onError: (err) => errors.push(err),
      onCycle: (verdicts) => {
        cycles++;
        expect(verdicts.map((x) => x.result)).toEqual(['VALID']);
        if (cycles === 3) void v.stop();
      },
    });
    await loop;
    expect(errors).toEqual([]);
    expect(cycles).toBe(3);
    const record = await getVerifier(db.pool, 'looper');
    // Each cycle's check-in carries the running count; the registry holds the last one.
    expect(record?.validCounts).toEqual({ [keyA.keyId]: 3 });
    expect(record?.anchorVersion).toBe(2);
  });

  it('runs one cycle from the CLI: a JSON line on stdout, the check-in in the registry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-verifier-cli-'));
    try {
      const file = join(dir, 'manifests.jsonl');
      const good = await signedManifest(keyB);
      const foreign = await signedManifest(outsider);
      writeFileSync(file, `${good.text}\n\n${foreign.text}\n`);
      const run = await runRotor(
        [
          'verifier',
          'run',
          '--id',
          'cli-once',
          '--base-url',
          baseUrl,
          '--manifests',
          file,
          '--once',
          '--root',
          rootB64,
        ],
        { ROTOR_CHECKIN_TOKEN: TOKEN },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const line = JSON.parse(run.stdout.trim());
      expect(line).toMatchObject({
        verifier_id: 'cli-once',
        anchor_version: 2,
        results: { VALID: 1, INVALID: 1 },
        valid_counts: { [keyB.keyId]: 1 },
      });
      expect((await getVerifier(db.pool, 'cli-once'))?.validCounts).toEqual({ [keyB.keyId]: 1 });

      const noToken = await runRotor(
        ['verifier', 'run', '--id', 'cli-x', '--base-url', baseUrl, '--once', '--root', rootB64],
        {
          ROTOR_CHECKIN_TOKEN: '',
        },
      );
      expect(noToken.code).toBe(2);
      expect(noToken.stderr).toMatch(
        /^rotor: a reference verifier needs its check-in credential \(ROTOR_VERIFIER_CREDENTIAL, from rotor verifier register\)/,
      );
      expect(noToken.stderr.trim().split('\n')).toHaveLength(1);

      // A registered verifier: its own credential, its anchor by hash, then retired.
      const registered = await runRotor(['verifier', 'register', 'cli-reg', '--identity', IDENTITY], {
        DATABASE_URL: db.url,
      });
      expect(registered.code).toBe(0);
      const credential = registered.stdout.trim();
      expect(credential).toMatch(/^rvc_[A-Za-z0-9_-]{43}$/);
      expect(registered.stderr).toContain('shown only now');
      const asRegistered = await runRotor(
        ['verifier', 'run', '--id', 'cli-reg', '--base-url', baseUrl, '--once', '--root', rootB64],
        { ROTOR_VERIFIER_CREDENTIAL: credential, ROTOR_CHECKIN_TOKEN: '' },
      );
      expect(asRegistered.stderr).toBe('');
      expect(asRegistered.code).toBe(0);
      expect(await getVerifier(db.pool, 'cli-reg')).toMatchObject({ anchorVersion: 2, checkedIn: true });
      const listed = await runRotor(['verifier', 'list', '--identity', IDENTITY], { DATABASE_URL: db.url });
      expect(listed.stdout).toMatch(/^cli-reg +yes +2 +\d{4}-/m);
      // The shared token cannot speak for it.
      const impersonated = await runRotor(
        ['verifier', 'run', '--id', 'cli-reg', '--base-url', baseUrl, '--once', '--root', rootB64],
        { ROTOR_VERIFIER_CREDENTIAL: '', ROTOR_CHECKIN_TOKEN: TOKEN },
      );
      expect(impersonated.code).not.toBe(0);
      expect(impersonated.stderr).toMatch(/refused with 401: the credential is not verifier cli-reg's/);
      const retired = await runRotor(['verifier', 'retire', 'cli-reg', '--reason', 'moved'], {
        DATABASE_URL: db.url,
      });
      expect(retired.code).toBe(0);
      expect((await getVerifier(db.pool, 'cli-reg'))?.retiredReason).toBe('moved');

      const missing = await runRotor(
        [
          'verifier',
          'run',
          '--id',
          'cli-y',
          '--base-url',
          baseUrl,
          '--once',
          '--manifests',
          join(dir, 'nope.jsonl'),
          '--root',
          rootB64,
        ],
        { ROTOR_CHECKIN_TOKEN: TOKEN },
      );
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('nope.jsonl cannot be read (ENOENT)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
