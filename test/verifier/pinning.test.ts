/**
 * The reference verifier pins the anchor root and fails closed (issue 12), against the real HTTP
 * service over Postgres, with a rewriting proxy in between playing the network attacker: a
 * swapped anchor, an altered one, an unsigned one, a rollback, an oversized and a stalled
 * response are all refused, and the verifier keeps its last trusted anchor only until that
 * anchor's own expires_at. A root rotation made with the custodian is followed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateAnchorRoot } from '../../src/activities/anchor-root';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody';
import { createHttpService, type HttpService } from '../../src/http/service';
import {
  b64urlEncode,
  type Signer,
  signAnchorJws,
  signManifest,
  softwareSigner,
  unverifiedAnchorPayload,
} from '../../src/manifest';
import { currentTrustAnchor, publishTrustAnchor, trustAnchorVersion } from '../../src/store/trust-anchors';
import { ReferenceVerifier, SIGNED_TRUST_ANCHOR_PATH } from '../../src/verifier/reference-verifier';
import { pinnedRootOf, testAnchorSigning } from '../helpers/anchor-signing';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { validUnsigned } from '../manifest/vectors';

const TOKEN = 'check-in-token-for-tests';
const IDENTITY = 'pinned';
const MAX_AGE = 60;

const signer = (n: number) => softwareSigner(new Uint8Array(32).fill(n));
const rootKey = signer(41);
const attackerRoot = signer(42);
const keyA = signer(43);
const keyB = signer(44);
const attackerKey = signer(45);

function anchorKey(s: Signer) {
  return { keyId: s.keyId, publicKey: s.publicKey, validFrom: '2026-01-01T00:00:00Z' };
}

let seq = 0;
async function signedManifest(s: Signer): Promise<string> {
  seq++;
  const id = `0190b6e0-0000-7000-8000-${seq.toString(16).padStart(12, '0')}`;
  // Schema-valid: the verifier gives the SDK's verdict, schema included.
  const text = JSON.stringify(
    validUnsigned({
      manifest_id: id,
      agent_id: `spiffe://trust.example/agent/p${seq}`,
      issued_at: '2026-06-01T00:00:00Z',
      expires_at: '2027-05-01T00:00:00Z',
    }),
  );
  return (await signManifest(text, s, { signedAt: new Date('2026-06-05T10:00:00Z') })).text;
}

/** What the proxy does to GET trust-anchor.jws; everything else passes through untouched. */
type Mode =
  | { kind: 'pass' }
  | { kind: 'replace'; body: string }
  | { kind: 'rewrite'; fn: (jws: string) => string }
  | { kind: 'hang' };

describe('ReferenceVerifier pinned to the anchor root, through a rewriting proxy', () => {
  let db: TestDatabase;
  let service: HttpService;
  let proxy: Server;
  let proxyUrl: string;
  let mode: Mode = { kind: 'pass' };
  let clockMs = Date.now();
  const now = () => new Date(clockMs);
  const hung: Array<() => void> = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await publishTrustAnchor(
      db.pool,
      IDENTITY,
      { activeKeyId: keyA.keyId, keys: [anchorKey(keyA)] },
      testAnchorSigning([rootKey], { lifetimeSeconds: 3600 }),
    );
    service = createHttpService({
      // Each step publishes an anchor and reads it back at once: no staleness window.
      anchorRevalidateMs: 0,
      pool: db.pool,
      anchorMaxAgeSeconds: MAX_AGE,
      checkInToken: TOKEN,
      identity: IDENTITY,
    });
    const upstream = (await service.listen(0)).port;
    proxy = createServer((req, res) => {
      const isAnchor = (req.url ?? '').split('?')[0] === SIGNED_TRUST_ANCHOR_PATH;
      if (isAnchor && mode.kind === 'hang') {
        hung.push(() => res.destroy());
        return;
      }
      if (isAnchor && mode.kind === 'replace') {
        res.writeHead(200, {
          'Content-Type': 'application/jose+json',
          'Cache-Control': `max-age=${MAX_AGE}`,
        });
        res.end(mode.body);
        return;
      }
      const current = mode;
      const headers = { ...req.headers };
      if (isAnchor && current.kind === 'rewrite') delete headers['if-none-match'];
      const up = request(
        { host: '127.0.0.1', port: upstream, path: req.url, method: req.method, headers },
        (upRes) => {
          if (!(isAnchor && current.kind === 'rewrite')) {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
            return;
          }
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            const body = current.fn(Buffer.concat(chunks).toString('utf8'));
            res.writeHead(200, {
              'Content-Type': 'application/jose+json',
              'Cache-Control': `max-age=${MAX_AGE}`,
            });
            res.end(body);
          });
        },
      );
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const h of hung) h();
    await new Promise<void>((resolve) => {
      proxy?.close(() => resolve());
      proxy?.closeAllConnections();
    });
    await service?.close();
    await db?.drop();
  });

  const verifier = (id: string, extra: { fetchTimeoutMs?: number } = {}) =>
    new ReferenceVerifier({
      id,
      baseUrl: proxyUrl,
      identity: IDENTITY,
      checkInToken: TOKEN,
      root: pinnedRootOf([rootKey]),
      now,
      ...extra,
    });

  /** Past the anchor's max-age, so the next refresh fetches it again. */
  const stale = () => {
    clockMs += (MAX_AGE + 1) * 1000;
  };

  it('refuses a swapped, an altered, an unsigned, an oversized and a stalled anchor, keeping the trusted one', async () => {
    mode = { kind: 'pass' };
    const v = verifier('swap-target', { fetchTimeoutMs: 1500 });
    await v.refresh();
    expect(v.anchorVersion).toBe(1);
    const held = v.anchorSha256;
    const goodA = await signedManifest(keyA);
    const forged = await signedManifest(attackerKey);

    // Swapped: the attacker's own anchor, signed by the attacker's root, naming the attacker's key.
    const swapped = await signAnchorJws(
      Buffer.from(
        JSON.stringify({
          version: 99,
          identity: IDENTITY,
          issued_at: '2026-01-01T00:00:00Z',
          expires_at: '2099-01-01T00:00:00Z',
          active_key_id: `sha256:${attackerKey.keyId}`,
          keys: [
            {
              key_id: `sha256:${attackerKey.keyId}`,
              algorithm: 'Ed25519',
              public_key: b64urlEncode(attackerKey.publicKey),
              valid_from: '2026-01-01T00:00:00Z',
            },
          ],
          root: {
            threshold: 1,
            keys: [{ kid: attackerRoot.keyId, public_key: b64urlEncode(attackerRoot.publicKey) }],
          },
        }),
      ),
      [attackerRoot],
    );
    const attempts: Array<[Mode, RegExp]> = [
      [{ kind: 'replace', body: swapped }, /signed by no pinned root key.*unknown signer/],
      [
        {
          // Altered in flight: the attacker's key added to the genuine payload, signatures kept.
          kind: 'rewrite',
          fn: (jws) => {
            const parsed = JSON.parse(jws);
            const payload = unverifiedAnchorPayload(jws) as { keys: unknown[]; active_key_id: string };
            payload.keys.push({
              key_id: `sha256:${attackerKey.keyId}`,
              algorithm: 'Ed25519',
              public_key: b64urlEncode(attackerKey.publicKey),
              valid_from: '2026-01-01T00:00:00Z',
            });
            parsed.payload = b64urlEncode(Buffer.from(JSON.stringify(payload)));
            return JSON.stringify(parsed);
          },
        },
        /does not verify \(the anchor was altered\)/,
      ],
      [
        { kind: 'replace', body: (await currentTrustAnchor(db.pool, IDENTITY))!.text },
        /unsigned trust anchor: refused/,
      ],
      [{ kind: 'replace', body: 'x'.repeat(300 * 1024) }, /over the 262144-byte limit/],
      [{ kind: 'hang' }, /cannot reach|did not arrive/],
    ];
    for (const [m, reason] of attempts) {
      mode = m;
      stale();
      // A stalled response is cut off by the fetch timeout (without it this await never settles).
      await expect(v.refresh()).rejects.toThrow(reason);
      expect(v.anchorVersion).toBe(1);
      expect(v.anchorSha256).toBe(held);
      expect(v.trustedKeyIds).toEqual([keyA.keyId]);
      expect(v.verify(goodA).result).toBe('VALID');
      expect(v.verify(forged)).toMatchObject({ result: 'INVALID', keyId: attackerKey.keyId });
    }
    mode = { kind: 'pass' };
  });

  it('refuses a rollback to an older version it was served after a newer one', async () => {
    mode = { kind: 'pass' };
    const v1 = (await trustAnchorVersion(db.pool, IDENTITY, 1))!.jws!;
    await publishTrustAnchor(
      db.pool,
      IDENTITY,
      { activeKeyId: keyB.keyId, keys: [anchorKey(keyA), anchorKey(keyB)] },
      testAnchorSigning([rootKey], { lifetimeSeconds: 3600 }),
    );
    const v = verifier('rollback-target');
    await v.refresh();
    expect(v.anchorVersion).toBe(2);
    mode = { kind: 'replace', body: v1 };
    stale();
    await expect(v.refresh()).rejects.toThrow(/version 1 is lower than 2: rollback refused/);
    expect(v.anchorVersion).toBe(2);
    expect(v.trustedKeyIds).toEqual([keyA.keyId, keyB.keyId].sort());
    mode = { kind: 'pass' };
  });

  it('keeps the last trusted anchor while refresh fails only until its expires_at, then verifies nothing', async () => {
    mode = { kind: 'pass' };
    await publishTrustAnchor(
      db.pool,
      IDENTITY,
      { activeKeyId: keyB.keyId, keys: [anchorKey(keyB)] },
      testAnchorSigning([rootKey], { lifetimeSeconds: 600 }),
    );
    clockMs = Date.now();
    const v = verifier('expiry-target', { fetchTimeoutMs: 1000 });
    await v.refresh();
    const expiresAt = v.anchorExpiresAt!.getTime();
    const goodB = await signedManifest(keyB);
    expect(v.verify(goodB).result).toBe('VALID');

    mode = { kind: 'hang' };
    clockMs = expiresAt - 1000;
    await expect(v.refresh()).rejects.toThrow();
    expect(v.verify(goodB).result).toBe('VALID');
    clockMs = expiresAt + 1000;
    await expect(v.refresh()).rejects.toThrow();
    const verdict = v.verify(goodB);
    expect(verdict.result).toBe('INVALID');
    expect(verdict.reason).toMatch(/expired at .* and no newer one could be fetched/);
    expect(v.trustedKeyIds).toEqual([]);
    // Reported at check-in as a verifier without a usable anchor, not as some other failure.
    expect(v.rejectionCounts).toEqual({ none: { no_anchor: 1 } });

    // Served the same (now expired) anchor again, it is refused as expired, not re-adopted.
    mode = { kind: 'replace', body: (await currentTrustAnchor(db.pool, IDENTITY))!.jws! };
    await expect(v.refresh()).rejects.toThrow(/expired at/);
    mode = { kind: 'pass' };
  });

  it('counts what it rejects before it holds any anchor as no_anchor (the check-in reason)', async () => {
    const v = verifier('never-refreshed');
    const verdict = v.verify(await signedManifest(keyB));
    expect(verdict).toMatchObject({ result: 'INVALID', keyId: null });
    expect(v.rejectionCounts).toEqual({ none: { no_anchor: 1 } });
  });

  it('refuses plain http: off this machine', () => {
    expect(
      () =>
        new ReferenceVerifier({
          id: 'x',
          baseUrl: 'http://rotor.example.com',
          checkInToken: TOKEN,
          root: pinnedRootOf([rootKey]),
        }),
    ).toThrow(/must be https: \(plain http: is accepted for loopback addresses only\)/);
    expect(
      new ReferenceVerifier({
        id: 'x',
        baseUrl: 'https://rotor.example.com',
        checkInToken: TOKEN,
        root: pinnedRootOf([rootKey]),
      }).id,
    ).toBe('x');
  });
});

describe('root rotation with the custodian: a pinned verifier follows it', () => {
  let db: TestDatabase;
  let service: HttpService;
  let dir: string;
  let custodian: SoftwareCustodian;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'rotor-root-'));
    custodian = await openSoftwareCustodian({ dir });
    service = createHttpService({
      // Each step publishes an anchor and reads it back at once: no staleness window.
      anchorRevalidateMs: 0,
      pool: db.pool,
      anchorMaxAgeSeconds: 1,
      checkInToken: TOKEN,
      identity: 'rooted',
    });
  });
  afterAll(async () => {
    await service?.close();
    await custodian?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('adopts the anchor naming root set 2 (signed by sets 1 and 2) and pins set 2', async () => {
    const init = await initIdentity(db.pool, custodian, 'rooted', 'rooted-key', {
      rootKeys: 2,
      rootThreshold: 2,
    });
    const { port } = await service.listen(0);
    let clock = Date.now();
    const v = new ReferenceVerifier({
      id: 'follower',
      baseUrl: `http://127.0.0.1:${port}`,
      identity: 'rooted',
      checkInToken: TOKEN,
      root: { threshold: 2, keys: init.rootKeys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) },
      now: () => new Date(clock),
    });
    await v.refresh();
    expect(v.anchorVersion).toBe(1);

    const change = await rotateAnchorRoot(db.pool, custodian, 'rooted', {
      count: 1,
      threshold: 1,
      lifetimeSeconds: 3600,
    });
    expect(change.anchor.version).toBe(2);
    expect(change.retired.map((k) => k.state)).toEqual(['retired', 'retired']);
    clock += 2000;
    await v.refresh();
    expect(v.anchorVersion).toBe(2);
    expect(v.root.keys.map((k) => k.kid)).toEqual(change.root.keys.map((k) => k.keyId));
    // The rotation anchor carries both sets' signatures; its payload names only the new set.
    const signers = JSON.parse(change.anchor.jws!).signatures.length;
    expect(signers).toBe(3);
  });
});
