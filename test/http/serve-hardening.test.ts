/**
 * Issue 12, point 5: a hardened `rotor serve`. Fifty clients that ask for the CRL and never read
 * must not take the service down: CRL streams are capped (the rest get 429) and run on a pool of
 * their own, a stalled reader is cut off, and meanwhile the anchor, check-ins and /healthz keep
 * answering. Against the real service and Postgres, with a CRL larger than the sockets' buffers.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveConfig } from '../../src/config';
import { createHttpService, type HttpService } from '../../src/http/service';
import { createPool, type Pool } from '../../src/store/db';
import { publishTrustAnchor } from '../../src/store/trust-anchors';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { newKey, oldKey, overlapAnchor } from '../store/fixtures';

const RECORDS = 40_000;
const MAX_STREAMS = 4;
const STALL_SECONDS = 2;
const SLOW_READERS = 50;
const TOKEN = 'hardening-test-token';

let db: TestDatabase;
let crlPool: Pool;
let service: HttpService;
let port: number;
let metricsPort: number;

beforeAll(async () => {
  db = await createTestDatabase();
  await publishTrustAnchor(db.pool, 'default', overlapAnchor());
  // About 17 MB of CRL: more than loopback's socket buffers hold for a reader that never reads.
  await db.pool.query(
    `INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at)
     SELECT 'm-' || lpad(i::text, 8, '0'),
            '{"manifest_id":"m-' || lpad(i::text, 8, '0') || '","reason":"test","pad":"' || repeat('x', 360) || '"}',
            $1, '2026-11-30T00:00:00Z'
       FROM generate_series(1, $2) AS i`,
    [newKey.keyId, RECORDS],
  );
  crlPool = createPool(db.url, MAX_STREAMS);
  service = createHttpService({
    pool: db.pool,
    crlPool,
    maxCrlStreams: MAX_STREAMS,
    crlStallSeconds: STALL_SECONDS,
    anchorMaxAgeSeconds: 60,
    checkInToken: TOKEN,
    identity: 'default',
  });
  ({ port } = await service.listen(0));
  ({ port: metricsPort } = await service.listenMetrics(0));
});
afterAll(async () => {
  await service?.close();
  await crlPool?.end();
  await db?.drop();
});

/** Sends a CRL request and never reads the body; resolves with the socket once headers arrive. */
async function slowReader(): Promise<{ socket: Socket; status: number }> {
  const socket = tcpConnect(port, '127.0.0.1');
  // A reset from the server (the cut-off) must not surface as an unhandled error.
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write('GET /.well-known/agent-manifest/revocation HTTP/1.1\r\nHost: x\r\n\r\n');
  const [first] = (await once(socket, 'data')) as [Buffer];
  socket.pause(); // never read another byte
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(first.toString('latin1'))?.[1]);
  return { socket, status };
}

describe('rotor serve under slow CRL readers (HTTP service + Postgres)', () => {
  it('caps the streams, cuts stalled readers off, and keeps the anchor, check-in and health answering', async () => {
    const readers = [];
    for (let i = 0; i < SLOW_READERS; i++) readers.push(await slowReader());
    const streaming = readers.filter((r) => r.status === 200);
    const refused = readers.filter((r) => r.status === 429);
    expect(streaming).toHaveLength(MAX_STREAMS);
    expect(refused).toHaveLength(SLOW_READERS - MAX_STREAMS);

    // While every stream slot is held by a reader that does not read:
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      const anchor = await fetch(`${base}/.well-known/agent-manifest/trust-anchor`);
      expect(anchor.status).toBe(200);
      await anchor.arrayBuffer();
    }
    const checkIn = await fetch(`${base}/v1/verifiers/hardening-1/check-in`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        anchor_version: 1,
        trusted_key_ids: [oldKey.keyId, newKey.keyId],
        valid_counts: {},
      }),
    });
    expect(checkIn.status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    // The stalled readers are cut off after STALL_SECONDS, their slots and connections freed:
    // a full read goes through again (before the cut-off it got 429).
    for (const r of refused) r.socket.destroy();
    let full = await fetch(`${base}/.well-known/agent-manifest/revocation`);
    const cutOffBy = Date.now() + (STALL_SECONDS + 10) * 1000;
    while (full.status === 429 && Date.now() < cutOffBy) {
      await full.arrayBuffer();
      await new Promise((r) => setTimeout(r, 250));
      full = await fetch(`${base}/.well-known/agent-manifest/revocation`);
    }
    for (const r of streaming) r.socket.destroy();
    expect(full.status).toBe(200);
    const body = await full.text();
    expect(body.split('\n').filter(Boolean)).toHaveLength(RECORDS);
  }, 60_000);

  it('serves /metrics on its own listener only', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^rotor_trust_anchor_version\{identity="default"\} 1$/m);
    expect(
      (await fetch(`http://127.0.0.1:${metricsPort}/.well-known/agent-manifest/trust-anchor`)).status,
    ).toBe(404);
  });

  it('serves a newly published anchor from memory once Postgres notifies it', async () => {
    const base = `http://127.0.0.1:${port}`;
    const before = (await (await fetch(`${base}/.well-known/agent-manifest/trust-anchor`)).json()) as {
      version?: number;
    };
    const next = overlapAnchor();
    await publishTrustAnchor(db.pool, 'default', {
      ...next,
      activeKeyId: newKey.keyId,
      keys: [next.keys[1]!],
    });
    let served: string | null = null;
    for (let i = 0; i < 50 && served === null; i++) {
      const res = await fetch(`${base}/.well-known/agent-manifest/trust-anchor`);
      const etag = res.headers.get('etag');
      await res.arrayBuffer();
      if (etag?.startsWith('"v2-')) served = etag;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(served, `still serving ${JSON.stringify(before).slice(0, 40)}`).not.toBeNull();
  });

  it('serves HTTPS when given a certificate and key (ROTOR_HTTP_TLS_CERT/_KEY)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-tls-'));
    const tlsService = { current: undefined as HttpService | undefined };
    try {
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          key,
          '-out',
          cert,
        ],
        { stdio: 'ignore' },
      );
      const config = serveConfig({ ROTOR_HTTP_TLS_CERT: cert, ROTOR_HTTP_TLS_KEY: key });
      expect(() => serveConfig({ ROTOR_HTTP_TLS_CERT: cert })).toThrow(
        'set both ROTOR_HTTP_TLS_CERT and ROTOR_HTTP_TLS_KEY (PEM files), or neither',
      );
      expect(() =>
        serveConfig({ ROTOR_HTTP_TLS_CERT: cert, ROTOR_HTTP_TLS_KEY: join(dir, 'nope.pem') }),
      ).toThrow(/^ROTOR_HTTP_TLS_KEY \(.*nope\.pem\) cannot be read \(ENOENT\)$/);
      tlsService.current = createHttpService({
        pool: db.pool,
        anchorMaxAgeSeconds: 60,
        identity: 'default',
        tls: config.tls,
      });
      const { port: tlsPort } = await tlsService.current.listen(0);
      const status = await new Promise<number>((resolve, reject) => {
        httpsGet(
          {
            host: '127.0.0.1',
            port: tlsPort,
            path: '/.well-known/agent-manifest/trust-anchor',
            ca: readFileSync(cert),
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        ).on('error', reject);
      });
      expect(status).toBe(200);
      // Plain HTTP to the TLS listener gets no answer.
      await expect(fetch(`http://127.0.0.1:${tlsPort}/healthz`)).rejects.toThrow();
    } finally {
      await tlsService.current?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
