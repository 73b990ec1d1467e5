/**
 * The CRL's signed header (issue 12, point 2): `GET /.well-known/agent-manifest/revocation.meta.jws`
 * from a real `rotor serve`, signed by the worker with the identity's revocation key, on Postgres
 * and the run's Temporal dev server (a compromise rotation's revoke batches, the anchor upkeep
 * workflow) and `rotor crl compact` as an operator runs it. A rewriting proxy plays the network
 * attacker between the reference verifier and serve: a truncated CRL, a frozen one (an old body
 * and its old header replayed after next_update), a rollback and a header by another key are each
 * refused, and the verifier keeps the last good CRL it held.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCrlHeaders } from '../../src/activities/crl-meta';
import {
  b64urlDecode,
  b64urlEncode,
  signCrlMeta,
  signManifest,
  signRevocation,
  softwareSigner,
  unverifiedAnchorPayload,
  verifyCrlMeta,
} from '../../src/manifest';
import { activeKey } from '../../src/store/keys';
import { insertManifest } from '../../src/store/manifests';
import { appendRevocations, crlHead } from '../../src/store/revocations';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { type RotorServe, startRotorServe } from '../helpers/rotor-serve';
import { validUnsigned } from '../manifest/vectors';

const IDENTITY = 'crl-meta';
const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));
const META = '/.well-known/agent-manifest/revocation.meta.jws';
const CRL = '/.well-known/agent-manifest/revocation';
const SEEDED = 30;

interface Captured {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * What the proxy does: pass through, truncate the CRL (drop its last line), replay responses
 * captured earlier (the CRL and its header as they were), or swap the header for another one.
 */
type Mode =
  | { kind: 'pass' }
  | { kind: 'truncate' }
  | { kind: 'replay'; crl: Captured; meta: Captured }
  | { kind: 'meta'; text: string };

let env: RotationEnv;
let serve: RotorServe;
let proxy: Server;
let proxyUrl: string;
let mode: Mode = { kind: 'pass' };
/** Every path and query the proxy was asked for. */
const seen: string[] = [];
let clockMs = Date.now();
const now = () => new Date(clockMs);
let root: Awaited<ReturnType<RotationEnv['rootOf']>>;
let revocationKey: { keyId: string; publicKey: Uint8Array };
let heldBeforeChange: { crl: Captured; meta: Captured };

function get(url: string, headers: Record<string, string> = {}): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function send(res: import('node:http').ServerResponse, c: Captured, body = c.body): void {
  const headers = { ...c.headers };
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  delete headers.connection;
  delete headers['keep-alive'];
  res.writeHead(c.status, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

function verifier(id: string, incrementalCrl = true): ReferenceVerifier {
  return new ReferenceVerifier({
    id,
    baseUrl: proxyUrl,
    identity: IDENTITY,
    checkInToken: 'unused-here',
    root,
    now,
    incrementalCrl,
  });
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const linesOf = (b: Buffer) => (b.length === 0 ? 0 : b.toString('utf8').split('\n').length - 1);

function rotor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ROTOR, ...args],
      {
        env: {
          ...process.env,
          DATABASE_URL: env.db.url,
          ROTOR_CUSTODIAN: 'software',
          ROTOR_SOFTWARE_KEY_DIR: env.keyDir,
          ROTOR_IDENTITY: IDENTITY,
        },
        timeout: 120_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  env = await createRotationEnv('software', { identity: IDENTITY });
  serve = await startRotorServe(env.db.url, { ROTOR_IDENTITY: IDENTITY });
  proxy = createServer((req, res) => {
    const url = `${serve.baseUrl}${req.url}`;
    seen.push(req.url ?? '');
    const path = (req.url ?? '').split('?')[0];
    const forward: Record<string, string> = {};
    if (typeof req.headers['if-none-match'] === 'string' && mode.kind === 'pass') {
      forward['if-none-match'] = req.headers['if-none-match'];
    }
    void (async () => {
      if (mode.kind === 'replay' && path === CRL) return send(res, mode.crl);
      if (mode.kind === 'replay' && path === META) return send(res, mode.meta);
      const got = await get(url, forward);
      if (mode.kind === 'truncate' && path === CRL && got.status === 200) {
        const text = got.body.toString('utf8');
        const cut = text.slice(0, text.lastIndexOf('\n', text.length - 2) + 1);
        return send(res, got, Buffer.from(cut, 'utf8'));
      }
      if (mode.kind === 'meta' && path === META) return send(res, got, Buffer.from(mode.text, 'utf8'));
      send(res, got);
    })().catch((err: unknown) => {
      res.writeHead(502);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    if (!proxy?.listening) return resolve();
    proxy.close(() => resolve());
    proxy.closeAllConnections();
  });
  await serve?.stop();
  await env?.close();
});

describe('the CRL signed header', () => {
  it('serve answers 404 with a one-line reason while no header exists, and 400 for a bad seq', async () => {
    const none = await get(`${serve.baseUrl}${META}`);
    expect(none.status).toBe(404);
    expect(JSON.parse(none.body.toString())).toMatchObject({
      error_code: 'CRL_META_NOT_FOUND',
      error_message: `no signed CRL header for identity ${IDENTITY} yet: the worker signs one when the revocation key is made, after each CRL change, and on anchor upkeep`,
    });
    const bad = await get(`${serve.baseUrl}${META}?seq=-1`);
    expect(bad.status).toBe(400);
  });

  it('is signed with the revocation key when the identity is made, and again after each revoke batch', async () => {
    const signer = await env.initIdentity(IDENTITY);
    await env.seed(IDENTITY, signer, SEEDED);
    root = await env.rootOf(IDENTITY);
    const anchor = (await currentTrustAnchor(env.db.pool, IDENTITY))!;
    const rk = (
      unverifiedAnchorPayload(anchor.jws!) as { revocation_key: { key_id: string; public_key: string } }
    ).revocation_key;
    revocationKey = { keyId: rk.key_id, publicKey: b64urlDecode(rk.public_key) };
    expect(revocationKey.keyId).toBe((await activeKey(env.db.pool, IDENTITY, 'revocation'))!.keyId);

    const first = await get(`${serve.baseUrl}${META}`);
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe('application/jose+json');
    const meta0 = verifyCrlMeta(first.body.toString(), {
      revocationKey,
      now: new Date(),
      identity: IDENTITY,
    });
    expect(meta0).toMatchObject({ seq: 0, records: 0, sha256: sha256('') });
    const v = verifier('holder');
    await v.refresh();
    expect(v.crlMeta?.seq).toBe(0);

    // A compromise: every seeded manifest revoked by the worker's revoke activity, 10 per batch.
    const handle = await env.start(IDENTITY, 'compromise', { batchSize: 10 });
    expect((await env.finish(handle)).phase).toBe('completed');
    const crl = await get(`${serve.baseUrl}${CRL}`);
    const head = Number(crl.headers['crl-head']);
    const latest = await get(`${serve.baseUrl}${META}`);
    expect(latest.headers['crl-meta-seq']).toBe(String(head));
    expect(latest.headers.warning).toBeUndefined();
    const meta = verifyCrlMeta(latest.body.toString(), {
      revocationKey,
      now: new Date(),
      identity: IDENTITY,
    });
    expect(meta).toMatchObject({ seq: head, records: SEEDED, sha256: sha256(crl.body) });
    expect(linesOf(crl.body)).toBe(SEEDED);
    // One header per committed batch (three of ten), besides the first: each batch re-signed it.
    const { rows } = await env.db.pool.query<{ seq: string; records: string }>(
      'SELECT seq, records FROM crl_meta WHERE identity = $1 ORDER BY seq',
      [IDENTITY],
    );
    expect(rows.map((r) => Number(r.records))).toEqual([0, 10, 20, 30]);

    clockMs += 31_000;
    await v.refresh();
    expect(v.revokedCount).toBe(SEEDED);
    expect(v.crlMeta).toMatchObject({ seq: head, records: SEEDED });
    heldBeforeChange = {
      crl,
      meta: await get(`${serve.baseUrl}${META}?seq=${head}`),
    };
  });

  it('a truncated CRL (its last line dropped) is refused; the verifier keeps the CRL it held', async () => {
    const fresh = verifier('fresh-truncated');
    const holder = verifier('holder-truncated', false);
    await holder.refresh();
    expect(holder.revokedCount).toBe(SEEDED);
    mode = { kind: 'truncate' };
    try {
      await expect(fresh.refresh()).rejects.toThrow(
        new RegExp(
          `^CRL at ${proxyUrl}${CRL} refused: the body has ${SEEDED - 1} record\\(s\\), sha256 [0-9a-f]{16}…, its signed header says ${SEEDED}, sha256 [0-9a-f]{16}… \\(truncated or altered\\); the CRL held stays \\(none\\)$`,
        ),
      );
      expect(fresh.crlMeta).toBeUndefined();
      expect(fresh.revokedCount).toBe(0);
      // Nothing verifies on a CRL the verifier could not check.
      expect(fresh.verify('{}').reason).toMatch(/no CRL with a valid signed header is held yet/);
      clockMs += 31_000;
      const held = holder.crlMeta!;
      await expect(holder.refresh()).rejects.toThrow(
        /\(truncated or altered\); the CRL held stays at seq \d+$/,
      );
      expect(holder.crlMeta).toEqual(held);
      expect(holder.revokedCount).toBe(SEEDED);
    } finally {
      mode = { kind: 'pass' };
    }
    clockMs += 31_000;
    await fresh.refresh();
    expect(fresh.revokedCount).toBe(SEEDED);
  });

  it('a header signed by another key, or altered, is refused', async () => {
    const stranger = softwareSigner(new Uint8Array(32).fill(77));
    const payload = JSON.parse(
      Buffer.from(b64urlDecode(JSON.parse(heldBeforeChange.meta.body.toString()).payload)).toString(),
    );
    const v = verifier('foreign');
    mode = { kind: 'meta', text: await signCrlMeta(payload, stranger) };
    try {
      await expect(v.refresh()).rejects.toThrow(
        /not signed by the revocation key [0-9a-f]{16}… of the trusted anchor .*: unknown signer/,
      );
      const jws = JSON.parse(heldBeforeChange.meta.body.toString());
      jws.payload = b64urlEncode(Buffer.from(JSON.stringify({ ...payload, records: payload.records + 1 })));
      mode = { kind: 'meta', text: JSON.stringify(jws) };
      await expect(v.refresh()).rejects.toThrow(/does not verify \(the header was altered\)/);
      expect(v.crlMeta).toBeUndefined();
    } finally {
      mode = { kind: 'pass' };
    }
  });

  it('rotor crl compact re-signs the header; until a change is signed, serve says the header is behind', async () => {
    // A revoked manifest that expired two hours ago: its record is the one compaction removes.
    const unsigned = JSON.stringify(
      validUnsigned({
        manifest_id: '0190b6e6-0000-7000-8000-00000000c0de',
        agent_id: 'spiffe://trust.example/agent/expired',
        issued_at: new Date(Date.now() - 30 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
        expires_at: new Date(Date.now() - 2 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      }),
    );
    const someKey = softwareSigner(new Uint8Array(32).fill(78));
    const { text } = await signManifest(unsigned, someKey, {
      signedAt: new Date(Date.now() - 20 * 86_400_000),
    });
    await insertManifest(env.db.pool, { text });
    const rk = (await activeKey(env.db.pool, IDENTITY, 'revocation'))!;
    const { line, record } = await signRevocation(
      {
        manifestId: '0190b6e6-0000-7000-8000-00000000c0de',
        reason: 'test',
        revokedBy: 'urn:rotor:test',
        revokedAt: new Date(),
      },
      await env.custodian.signer(rk.handle),
    );
    // Written past the worker (as an operator's import would): no header is signed for it.
    await appendRevocations(env.db.pool, [
      {
        manifestId: '0190b6e6-0000-7000-8000-00000000c0de',
        line,
        signerKeyId: rk.keyId,
        revokedAt: record.revokedAt,
      },
    ]);
    const behindHead = (await crlHead(env.db.pool)).head;
    const behind = await get(`${serve.baseUrl}${META}`);
    expect(behind.status).toBe(200);
    expect(Number(behind.headers['crl-meta-seq'])).toBeLessThan(behindHead);
    expect(behind.headers['crl-head']).toBe(String(behindHead));
    expect(behind.headers.warning).toMatch(/the CRL is at \d+ and its header is not signed yet/);
    const exact = await get(`${serve.baseUrl}${META}?seq=${behindHead}`);
    expect(exact.status).toBe(404);
    expect(JSON.parse(exact.body.toString()).error_message).toMatch(
      new RegExp(
        `^no signed CRL header for identity ${IDENTITY} at seq ${behindHead} \\(the CRL is at ${behindHead}\\)`,
      ),
    );
    // A verifier refuses that body (no header for it) and keeps what it held.
    const v = verifier('compaction');
    clockMs += 31_000;
    await expect(v.refresh()).rejects.toThrow(/its signed header .* answered 404/);

    const out = await rotor('crl', 'compact', '--margin', '0');
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as {
      compacted: number;
      head: number;
      served: number;
      headers: unknown[];
    };
    expect(result).toMatchObject({ compacted: 1, served: SEEDED });
    expect(result.headers).toEqual([
      { identity: IDENTITY, seq: result.head, signed: true, next_update: expect.any(String) },
    ]);
    const crl = await get(`${serve.baseUrl}${CRL}`);
    const meta = verifyCrlMeta((await get(`${serve.baseUrl}${META}`)).body.toString(), {
      revocationKey,
      now: new Date(),
      identity: IDENTITY,
    });
    expect(meta).toMatchObject({ seq: result.head, records: SEEDED, sha256: sha256(crl.body) });

    // For a static host: the same body, and beside it the header that describes it, verifiable.
    const staticDir = mkdtempSync(join(tmpdir(), 'rotor-static-crl-'));
    try {
      const file = join(staticDir, 'revocation');
      const wrote = await rotor('serve', '--crl-file', file, '--crl-file-only');
      expect(wrote.code, wrote.stderr).toBe(0);
      expect(JSON.parse(wrote.stdout)).toMatchObject({
        records: SEEDED,
        head: result.head,
        header: 'written',
        header_file: `${file}.meta.jws`,
      });
      const body = readFileSync(file);
      expect(body.equals(crl.body)).toBe(true);
      const beside = verifyCrlMeta(readFileSync(`${file}.meta.jws`, 'utf8'), {
        revocationKey,
        now: new Date(),
        identity: IDENTITY,
      });
      expect(beside).toMatchObject({ seq: result.head, records: SEEDED, sha256: sha256(body) });
    } finally {
      rmSync(staticDir, { recursive: true, force: true });
    }
    clockMs += 31_000;
    await v.refresh();
    expect(v.crlMeta?.seq).toBe(result.head);
  });

  it('a frozen CRL (an old body and its old header replayed after next_update) and a rollback are refused', async () => {
    // Full lists each time (a delta-reading verifier refuses a lower CRL-Head before any header).
    const holder = verifier('holder-frozen', false);
    await holder.refresh();
    const held = holder.crlMeta!;
    expect(held.seq).toBeGreaterThan(Number(heldBeforeChange.crl.headers['crl-head']));
    mode = { kind: 'replay', ...heldBeforeChange };
    try {
      // Before the old header's next_update: its seq is below the one held.
      clockMs += 31_000;
      await expect(holder.refresh()).rejects.toThrow(
        /seq \d+ is lower than \d+ already held: rollback refused/,
      );
      expect(holder.crlMeta).toEqual(held);
      // After it: frozen, for a verifier that never saw anything newer too.
      const oldMeta = verifyCrlMeta(heldBeforeChange.meta.body.toString(), {
        revocationKey,
        now: new Date(),
      });
      clockMs = Math.max(oldMeta.nextUpdate.getTime(), held.nextUpdate.getTime()) + 1000;
      const fresh = verifier('fresh-frozen');
      await expect(fresh.refresh()).rejects.toThrow(
        /next_update \S+ has passed .*: the CRL is frozen or stale, refused/,
      );
      expect(fresh.crlMeta).toBeUndefined();
      await expect(holder.refresh()).rejects.toThrow(/CRL at .* refused: /);
      // The held CRL's own header has passed too: nothing verifies on it any more.
      expect(holder.verify('{}').reason).toMatch(
        /passed its signed next_update .* and no fresh one could be fetched/,
      );
    } finally {
      mode = { kind: 'pass' };
      clockMs = Date.now();
    }
  });

  it("the README's jose check, run as written: passes on the served CRL, fails on a truncated one", async () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const block = /<!-- crl-meta-jose[^>]*-->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README: the block after <!-- crl-meta-jose -->').toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'rotor-crl-meta-jose-'));
    // `import "jose"` resolves from the working folder, as in a project that depends on it.
    symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(dir, 'node_modules'));
    const run = (base: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const script = block!
          .replace('https://rotor.example', base)
          .replace('<REVOCATION_KEY_B64URL>', b64urlEncode(revocationKey.publicKey));
        execFile('sh', ['-c', script], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
        );
      });
    try {
      const ok = await run(serve.baseUrl);
      expect(ok.code, ok.stderr).toBe(0);
      const head = (await crlHead(env.db.pool)).head;
      expect(JSON.parse(ok.stdout)).toMatchObject({ seq: head, records: SEEDED });
      mode = { kind: 'truncate' };
      try {
        const cut = await run(proxyUrl);
        expect(cut.code).not.toBe(0);
        expect(cut.stderr).toMatch(/Error: CRL truncated or altered/);
      } finally {
        mode = { kind: 'pass' };
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a delta is checked against the header over the whole body held, and refused when cut short', async () => {
    const v = verifier('delta');
    await v.refresh();
    const before = v.crlMeta!;
    const rk = (await activeKey(env.db.pool, IDENTITY, 'revocation'))!;
    const signer = await env.custodian.signer(rk.handle);
    const records = await Promise.all(
      [1, 2].map(async (n) => {
        const manifestId = `0190b6e6-0000-7000-8000-0000000de17${n}`;
        const { line, record } = await signRevocation(
          { manifestId, reason: 'test', revokedBy: 'urn:rotor:test', revokedAt: new Date() },
          signer,
        );
        return { manifestId, line, signerKeyId: rk.keyId, revokedAt: record.revokedAt };
      }),
    );
    await appendRevocations(env.db.pool, records);
    // What the worker does after its own commits (revoke.ts).
    await signCrlHeaders(env.db.pool, env.deps.custodian, { lifetimeSeconds: 3600 });
    const head = (await crlHead(env.db.pool)).head;

    mode = { kind: 'truncate' };
    try {
      clockMs += 31_000;
      seen.length = 0;
      await expect(v.refresh()).rejects.toThrow(
        new RegExp(
          `^CRL at ${proxyUrl}${CRL}\\?since=${before.seq} refused: the body has ${before.records + 1} record\\(s\\).*\\(truncated or altered\\)`,
        ),
      );
      expect(seen).toContain(`${CRL}?since=${before.seq}`);
      expect(v.crlMeta).toEqual(before);
    } finally {
      mode = { kind: 'pass' };
    }
    // The refused delta sends it to the full list once; then deltas again.
    clockMs += 31_000;
    await v.refresh();
    expect(v.crlMeta?.seq).toBe(head);
    await appendRevocations(env.db.pool, [
      await (async () => {
        const manifestId = '0190b6e6-0000-7000-8000-0000000de173';
        const { line, record } = await signRevocation(
          { manifestId, reason: 'test', revokedBy: 'urn:rotor:test', revokedAt: new Date() },
          signer,
        );
        return { manifestId, line, signerKeyId: rk.keyId, revokedAt: record.revokedAt };
      })(),
    ]);
    await signCrlHeaders(env.db.pool, env.deps.custodian, { lifetimeSeconds: 3600 });
    const next = (await crlHead(env.db.pool)).head;
    clockMs += 31_000;
    seen.length = 0;
    await v.refresh();
    expect(seen).toContain(`${CRL}?since=${head}`);
    const full = await get(`${serve.baseUrl}${CRL}`);
    expect(v.crlMeta).toMatchObject({ seq: next, records: before.records + 3, sha256: sha256(full.body) });
  });

  it('the anchor upkeep workflow re-signs the header before next_update, with no change to the CRL', async () => {
    // A header that has less than half its lifetime left: signed just now to hold 2 minutes.
    await signCrlHeaders(env.db.pool, env.deps.custodian, {
      identity: IDENTITY,
      lifetimeSeconds: 120,
      renewWithinSeconds: 10 * 3600,
    });
    const short = verifyCrlMeta((await get(`${serve.baseUrl}${META}`)).body.toString(), {
      revocationKey,
      now: new Date(),
    });
    expect(short.nextUpdate.getTime()).toBeLessThan(Date.now() + 121_000);
    const run = () =>
      env.temporal.client.workflow.execute('anchorUpkeepWorkflow', {
        workflowId: `crl-meta-upkeep-${Date.now()}`,
        taskQueue: env.temporal.taskQueue,
        args: [{ identity: IDENTITY, withinSeconds: 3600 }],
      }) as Promise<{ crlSeq: number; crlSigned: boolean; crlNextUpdate: string }>;
    const renewed = await run();
    expect(renewed).toMatchObject({ crlSeq: short.seq, crlSigned: true });
    const meta = verifyCrlMeta((await get(`${serve.baseUrl}${META}`)).body.toString(), {
      revocationKey,
      now: new Date(),
    });
    expect(meta.seq).toBe(short.seq);
    expect(meta.nextUpdate.toISOString()).toBe(renewed.crlNextUpdate);
    expect(meta.nextUpdate.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    // Not due again: the next look leaves it.
    expect(await run()).toMatchObject({ crlSeq: short.seq, crlSigned: false });
  });
});
