/**
 * The root chain (issue 12, TUF's root rotation; README "Following root rotations"): a verifier
 * pinned to root set 1 that was away while the identity rotated its root twice (1 → 2 → 3) reaches
 * set 3 through `root/<n>.jws`, each link signed by the set before it and its own set, and adopts
 * the current anchor. Real stack: Postgres, a `rotor serve` process logged in as the
 * least-privilege role `rotor_serve` (migration 085), root keys made and used by the software
 * custodian; a rewriting proxy in front plays the network attacker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renewAnchor, rotateAnchorRoot } from '../../src/activities/anchor-root';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody';
import {
  b64urlDecode,
  b64urlEncode,
  MAX_ROOT_CHAIN_STEPS,
  rootChainPath,
  type Signer,
  signAnchorJws,
  signManifest,
  softwareSigner,
  unverifiedAnchorPayload,
} from '../../src/manifest';
import type { StoredRootSet } from '../../src/store/anchor-roots';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { ReferenceVerifier, SIGNED_TRUST_ANCHOR_PATH } from '../../src/verifier/reference-verifier';
import { runRotor } from '../helpers/cli';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { type RotorServe, startRotorServe } from '../helpers/rotor-serve';
import { validUnsigned } from '../manifest/vectors';

const IDENTITY = 'chain';
const TOKEN = 'check-in-token-for-tests';
const LIFETIME = 3600;
/** Rewrites of GET paths the proxy makes; anything not listed passes through untouched. */
const rewrites = new Map<string, string>();

describe('root chain: a verifier pinned to root set 1 follows two root rotations (rotor serve as rotor_serve)', () => {
  let db: TestDatabase;
  let serve: RotorServe;
  let proxy: Server;
  let proxyUrl: string;
  let dir: string;
  let custodian: SoftwareCustodian;
  let root1: StoredRootSet['keys'];
  let set2: StoredRootSet;
  let set3: StoredRootSet;
  let signingKey: Signer;
  let clockMs = Date.now();
  const now = () => new Date(clockMs);

  const verifier = (id: string) =>
    new ReferenceVerifier({
      id,
      baseUrl: proxyUrl,
      identity: IDENTITY,
      checkInToken: TOKEN,
      root: { threshold: 1, keys: root1.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) },
      rootVersion: 1,
      now,
      fetchTimeoutMs: 5000,
    });

  /** Past the anchor's max-age (1 s), so the next refresh fetches it again. */
  const stale = () => {
    clockMs += 2000;
  };

  async function manifestSignedBy(s: Signer): Promise<string> {
    const text = JSON.stringify(
      validUnsigned({
        manifest_id: '0190b6e0-0000-7000-8000-00000000c4a1',
        agent_id: 'spiffe://trust.example/agent/chain',
        issued_at: '2026-06-01T00:00:00Z',
        expires_at: '2027-05-01T00:00:00Z',
      }),
    );
    return (await signManifest(text, s, { signedAt: new Date('2026-06-05T10:00:00Z') })).text;
  }

  /** Waits until rotor serve's in-memory anchor (LISTEN/NOTIFY, revalidated every 100 ms) is `version`. */
  async function servedVersion(version: number): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${serve.baseUrl}/.well-known/agent-manifest/trust-anchor`);
      if (((await res.json()) as { version: number }).version === version) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`rotor serve never served anchor version ${version}`);
  }

  /** Verifiers that trusted anchor 1 under root set 1 and were then away, by name. */
  const away = new Map<string, ReferenceVerifier>();
  const awayOne = (id: string) => away.get(id)!;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'rotor-root-chain-'));
    custodian = await openSoftwareCustodian({ dir });
    const init = await initIdentity(db.pool, custodian, IDENTITY, 'chain-key');
    root1 = init.rootKeys;
    signingKey = await custodian.signer(init.key.handle);

    const url = new URL(db.url);
    url.username = 'rotor_serve';
    serve = await startRotorServe(url.toString(), {
      ROTOR_IDENTITY: IDENTITY,
      ROTOR_ANCHOR_MAX_AGE: '1',
      ROTOR_CHECKIN_TOKEN: TOKEN,
      // The access log of every request would bury the test's output.
      ROTOR_LOG_LEVEL: 'warn',
    });
    const upstream = new URL(serve.baseUrl);
    proxy = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const body = req.method === 'GET' ? rewrites.get(path) : undefined;
      if (body !== undefined) {
        res.writeHead(200, { 'Content-Type': 'application/jose+json', 'Cache-Control': 'max-age=1' });
        res.end(body);
        return;
      }
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    for (const id of ['catch-up', 'forged-chain', 'new-set-only', 'new-set-below-threshold']) {
      const v = verifier(id);
      await v.refresh();
      expect(v.anchorVersion).toBe(1);
      expect(v.rootVersion).toBe(1);
      away.set(id, v);
    }

    // Two root rotations while it is away, then a routine re-sign under set 3 (signed by set 3
    // alone: the anchor served is not itself a root chain link).
    set2 = (
      await rotateAnchorRoot(db.pool, custodian, IDENTITY, {
        count: 2,
        threshold: 2,
        lifetimeSeconds: LIFETIME,
      })
    ).root;
    set3 = (
      await rotateAnchorRoot(db.pool, custodian, IDENTITY, {
        count: 1,
        threshold: 1,
        lifetimeSeconds: LIFETIME,
      })
    ).root;
    const renewed = await renewAnchor(db.pool, async () => custodian, IDENTITY, {
      withinSeconds: 10 * LIFETIME,
      lifetimeSeconds: LIFETIME,
    });
    expect(renewed.version).toBe(4);
    expect(renewed.rootVersion).toBe(3);
    await servedVersion(4);
    stale();
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => {
      proxy?.close(() => resolve());
      proxy?.closeAllConnections();
    });
    await serve?.stop();
    await custodian?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves each root rotation anchor by root version, signed by the sets on both sides', async () => {
    const base = serve.baseUrl;
    const kids = async (n: number) => {
      const res = await fetch(`${base}${rootChainPath(n)}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/jose+json');
      const jws = JSON.parse(await res.text()) as { signatures: { protected: string }[] };
      const payload = unverifiedAnchorPayload(JSON.stringify(jws)) as { root: { version: number } };
      expect(payload.root.version).toBe(n);
      return jws.signatures
        .map((s) => JSON.parse(Buffer.from(b64urlDecode(s.protected)).toString('utf8')).kid as string)
        .sort();
    };
    const ids = (keys: { keyId: string }[]) => keys.map((k) => k.keyId);
    expect(await kids(1)).toEqual(ids(root1).sort());
    expect(await kids(2)).toEqual([...ids(root1), ...ids(set2.keys)].sort());
    expect(await kids(3)).toEqual([...ids(set2.keys), ...ids(set3.keys)].sort());
    expect((await fetch(`${base}${rootChainPath(4)}`)).status).toBe(404);
    expect((await fetch(`${base}/.well-known/agent-manifest/root/0.jws`)).status).toBe(400);
    expect((await fetch(`${base}/.well-known/agent-manifest/root/x.jws`)).status).toBe(400);
    // The current anchor is signed by set 3 alone: set 1 cannot verify it directly.
    const current = await fetch(`${base}${SIGNED_TRUST_ANCHOR_PATH}`);
    const signatures = (JSON.parse(await current.text()) as { signatures: unknown[] }).signatures;
    expect(signatures).toHaveLength(1);
  });

  it('a forged middle link is refused; the verifier keeps anchor 1 and root set 1', async () => {
    // The attacker's own chain: set A2 (claimed as root set 2, signed by itself, since set 1's
    // keys are out of reach), set A3 signed by A2 and A3, and an anchor under A3 naming the
    // attacker's signing key. Without the rule that link n is signed by set n-1, it would all hold.
    const a2 = softwareSigner(new Uint8Array(32).fill(71));
    const a3 = softwareSigner(new Uint8Array(32).fill(72));
    const evil = softwareSigner(new Uint8Array(32).fill(73));
    const genuine = unverifiedAnchorPayload((await currentTrustAnchor(db.pool, IDENTITY))!.jws!) as Record<
      string,
      unknown
    >;
    const forged = (version: number, rootVersion: number, rootKey: Signer) =>
      Buffer.from(
        JSON.stringify({
          ...genuine,
          version,
          expires_at: '2099-01-01T00:00:00Z',
          active_key_id: `sha256:${evil.keyId}`,
          keys: [
            {
              key_id: `sha256:${evil.keyId}`,
              algorithm: 'Ed25519',
              public_key: b64urlEncode(evil.publicKey),
              valid_from: '2026-01-01T00:00:00Z',
            },
          ],
          root: {
            version: rootVersion,
            threshold: 1,
            keys: [{ kid: rootKey.keyId, public_key: b64urlEncode(rootKey.publicKey) }],
          },
        }),
      );
    rewrites.set(rootChainPath(2), await signAnchorJws(forged(2, 2, a2), [a2]));
    rewrites.set(rootChainPath(3), await signAnchorJws(forged(3, 3, a3), [a2, a3]));
    rewrites.set(SIGNED_TRUST_ANCHOR_PATH, await signAnchorJws(forged(9, 3, a3), [a3]));
    try {
      const v = awayOne('forged-chain');
      const err = await v.refresh().then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toMatch(
        /^root chain link 2 at .*: signed by no pinned root key .*unknown signer$/,
      );
      expect(err?.message).not.toContain('\n');
      expect(v.anchorVersion).toBe(1);
      expect(v.rootVersion).toBe(1);
      expect(v.root.keys.map((k) => k.kid)).toEqual(root1.map((k) => k.keyId));
      expect(v.trustedKeyIds).toEqual([signingKey.keyId]);
      expect(v.verify(await manifestSignedBy(signingKey)).result).toBe('VALID');
      expect(v.verify(await manifestSignedBy(evil)).result).toBe('INVALID');
    } finally {
      rewrites.clear();
    }
  });

  it('a link signed only by its new set (not the set before) is refused', async () => {
    // Link 3 as published, re-signed by set 3 alone: a holder of only the new keys.
    const link3 = await (await fetch(`${serve.baseUrl}${rootChainPath(3)}`)).text();
    const payload = b64urlDecode((JSON.parse(link3) as { payload: string }).payload);
    const set3Signers = await Promise.all(set3.keys.map((k) => custodian.signer(k.handle)));
    rewrites.set(rootChainPath(3), await signAnchorJws(payload, set3Signers));
    try {
      const v = awayOne('new-set-only');
      await expect(v.refresh()).rejects.toThrow(
        /^root chain link 3 at .*: signed by no pinned root key .*unknown signer$/,
      );
      expect(v.anchorVersion).toBe(1);
      expect(v.rootVersion).toBe(1);
      expect(v.verify(await manifestSignedBy(signingKey)).result).toBe('VALID');
    } finally {
      rewrites.clear();
    }
  });

  it("a link signed by the set before it but below its own set's threshold is refused", async () => {
    // Link 2 re-signed by set 1 and one of set 2's two keys (set 2's threshold is 2).
    const link2 = await (await fetch(`${serve.baseUrl}${rootChainPath(2)}`)).text();
    const payload = b64urlDecode((JSON.parse(link2) as { payload: string }).payload);
    const signers = [
      ...(await Promise.all(root1.map((k) => custodian.signer(k.handle)))),
      await custodian.signer(set2.keys[0]!.handle),
    ];
    rewrites.set(rootChainPath(2), await signAnchorJws(payload, signers));
    try {
      const v = awayOne('new-set-below-threshold');
      await expect(v.refresh()).rejects.toThrow(
        /^root chain link 2 at .*: root rotation below threshold: 1 of the new root keys signed, 2 required$/,
      );
      expect(v.anchorVersion).toBe(1);
      expect(v.rootVersion).toBe(1);
    } finally {
      rewrites.clear();
    }
  });

  it(`refuses an anchor claiming a root set more than ${MAX_ROOT_CHAIN_STEPS} rotations ahead, without walking`, async () => {
    const current = (await currentTrustAnchor(db.pool, IDENTITY))!.jws!;
    const jws = JSON.parse(current) as { payload: string };
    const payload = unverifiedAnchorPayload(current) as { root: { version: number } };
    payload.root.version = 1 + MAX_ROOT_CHAIN_STEPS + 1;
    jws.payload = b64urlEncode(Buffer.from(JSON.stringify(payload)));
    rewrites.set(SIGNED_TRUST_ANCHOR_PATH, JSON.stringify(jws));
    try {
      const v = verifier('too-far');
      // Holds nothing yet: the claim is refused before any link is fetched.
      await expect(v.refresh()).rejects.toThrow(
        new RegExp(
          `names root set ${MAX_ROOT_CHAIN_STEPS + 2}, ${MAX_ROOT_CHAIN_STEPS + 1} root rotations past`,
        ),
      );
      expect(v.anchorVersion).toBe(0);
    } finally {
      rewrites.clear();
    }
  });

  it('the verifier away across both rotations walks 1 → 2 → 3 and adopts the current anchor', async () => {
    const v = awayOne('catch-up');
    await v.refresh();
    expect(v.anchorVersion).toBe(4);
    expect(v.rootVersion).toBe(3);
    expect(v.root.keys.map((k) => k.kid)).toEqual(set3.keys.map((k) => k.keyId));
    expect(v.verify(await manifestSignedBy(signingKey)).result).toBe('VALID');
    // Pinned to set 3 now: the next anchor under set 3 is verified directly, with no chain.
    await renewAnchor(db.pool, async () => custodian, IDENTITY, {
      withinSeconds: 10 * LIFETIME,
      lifetimeSeconds: LIFETIME,
    });
    await servedVersion(5);
    stale();
    await v.refresh();
    expect(v.anchorVersion).toBe(5);
    expect(v.rootVersion).toBe(3);
  });

  it('rotor verifier run --root-version: pinned to set 1 it catches up; set 1 claimed as set 2 is refused', async () => {
    const args = (id: string, rootVersion: string) => [
      'verifier',
      'run',
      '--id',
      id,
      '--base-url',
      serve.baseUrl,
      '--identity',
      IDENTITY,
      '--once',
      '--root',
      b64urlEncode(root1[0]!.publicKey),
      '--root-version',
      rootVersion,
    ];
    const env = { ROTOR_CHECKIN_TOKEN: TOKEN, ROTOR_VERIFIER_CREDENTIAL: '' };
    const ok = await runRotor(args('cli-catch-up', '1'), env);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.trim())).toMatchObject({ anchor_version: 5, root_version: 3 });
    // The walk would start at link 3, which set 2 signed, not set 1: refused, exit 1, one line.
    const wrong = await runRotor(args('cli-wrong-version', '2'), env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^rotor: root chain link 3 at .*: signed by no pinned root key .*\n$/);
  });

  it('pinned to set 3: an anchor its keys signed but naming set 2, or set 3 with a key added, is refused and nothing changes', async () => {
    const v = new ReferenceVerifier({
      id: 'pinned-set-3',
      baseUrl: proxyUrl,
      identity: IDENTITY,
      checkInToken: TOKEN,
      root: {
        threshold: set3.threshold,
        keys: set3.keys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })),
      },
      rootVersion: 3,
      now,
      fetchTimeoutMs: 5000,
    });
    await v.refresh();
    const held = v.anchorVersion!;
    expect(v.rootVersion).toBe(3);
    const set3Key = await custodian.signer(set3.keys[0]!.handle);
    const genuine = unverifiedAnchorPayload((await currentTrustAnchor(db.pool, IDENTITY))!.jws!) as Record<
      string,
      unknown
    >;
    const stranger = softwareSigner(new Uint8Array(32).fill(74));
    const naming = (rootVersion: number, keys: Signer[]) =>
      Buffer.from(
        JSON.stringify({
          ...genuine,
          version: held + 1,
          root: {
            version: rootVersion,
            threshold: 1,
            keys: keys.map((k) => ({ kid: k.keyId, public_key: b64urlEncode(k.publicKey) })),
          },
        }),
      );
    try {
      for (const [forged, message] of [
        [
          await signAnchorJws(naming(2, [set3Key]), [set3Key]),
          'names root set 2, below the pinned set 3: refused',
        ],
        [
          await signAnchorJws(naming(3, [set3Key, stranger]), [set3Key, stranger]),
          'names root set 3 with other keys or a lower threshold than the pinned set 3',
        ],
      ] as const) {
        rewrites.set(SIGNED_TRUST_ANCHOR_PATH, forged);
        stale();
        await expect(v.refresh()).rejects.toThrow(message);
        expect(v.anchorVersion).toBe(held);
        expect(v.rootVersion).toBe(3);
        expect(v.root.keys.map((k) => k.kid)).toEqual(set3.keys.map((k) => k.keyId));
      }
    } finally {
      rewrites.clear();
    }
  });
});
