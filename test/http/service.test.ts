import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpService, type HttpService } from '../../src/http/service';
import { createPool } from '../../src/store/db';
import { appendRevocations } from '../../src/store/revocations';
import { publishTrustAnchor } from '../../src/store/trust-anchors';
import { countVerifiers, getVerifier } from '../../src/store/verifiers';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { newKey, oldKey, overlapAnchor, sdkRevocation, syntheticRevocation } from '../store/fixtures';

const TOKEN = 'check-in-token-for-tests';
let db: TestDatabase;
let service: HttpService;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  service = createHttpService({
    pool: db.pool,
    anchorMaxAgeSeconds: 300,
    checkInToken: TOKEN,
    identity: 'default',
  });
  base = `http://127.0.0.1:${(await service.listen(0)).port}`;
});
afterAll(async () => {
  await service?.close();
  await db?.drop();
});

async function expectError(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({
    error_code: code,
    error_message: expect.any(String),
    retry_after_seconds: null,
  });
  expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  return body;
}

describe('trust anchor endpoint', () => {
  const path = '/.well-known/agent-manifest/trust-anchor';

  it('answers 404 before any anchor is published', async () => {
    await expectError(await fetch(base + path), 404, 'TRUST_ANCHOR_NOT_FOUND');
  });

  it('serves the stored text with a strong ETag, max-age, and 304 on If-None-Match', async () => {
    const v1 = await publishTrustAnchor(db.pool, 'default', {
      activeKeyId: oldKey.keyId,
      keys: [
        {
          keyId: oldKey.keyId,
          publicKey: oldKey.publicKey,
          validFrom: '2026-01-01T00:00:00Z',
          status: 'active',
        },
      ],
    });
    const res = await fetch(base + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(res.headers.get('etag')).toBe(v1.etag);
    expect(res.headers.get('etag')).not.toMatch(/^W\//);
    expect(await res.text()).toBe(v1.text);

    const cached = await fetch(base + path, { headers: { 'If-None-Match': v1.etag } });
    expect(cached.status).toBe(304);
    expect(cached.headers.get('etag')).toBe(v1.etag);
    expect(await cached.text()).toBe('');
    expect((await fetch(base + path, { headers: { 'If-None-Match': `"other", W/${v1.etag}` } })).status).toBe(
      304,
    );

    // A new version: the old ETag no longer matches, and the body is the runbook's shape plus
    // version and per-key status and valid_until.
    const v2 = await publishTrustAnchor(db.pool, 'default', overlapAnchor());
    // The service holds the anchor in memory and learns of v2 from Postgres' NOTIFY, moments later.
    let fresh = await fetch(base + path, { headers: { 'If-None-Match': v1.etag } });
    for (let i = 0; i < 50 && fresh.status === 304; i++) {
      await new Promise((r) => setTimeout(r, 50));
      fresh = await fetch(base + path, { headers: { 'If-None-Match': v1.etag } });
    }
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('etag')).toBe(v2.etag);
    const doc = (await fresh.json()) as Record<string, unknown>;
    expect(doc).toEqual({
      version: 2,
      active_key_id: `sha256:${newKey.keyId}`,
      keys: [
        expect.objectContaining({
          key_id: `sha256:${oldKey.keyId}`,
          algorithm: 'Ed25519',
          status: 'retiring',
          valid_until: '2026-06-06T10:00:00Z',
        }),
        expect.objectContaining({
          key_id: `sha256:${newKey.keyId}`,
          public_key: expect.any(String),
          valid_from: '2026-06-05T10:00:00Z',
          status: 'active',
        }),
      ],
    });
    const head = await fetch(base + path, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(v2.text)));
  });
});

describe('CRL endpoints', () => {
  const crl = '/.well-known/agent-manifest/revocation';

  it('returns one record by manifest_id, at both paths, or 404', async () => {
    const sdk = sdkRevocation();
    await appendRevocations(db.pool, [sdk, syntheticRevocation('0190b6e0-0000-7000-8000-000000000111')]);
    const one = await fetch(`${base}${crl}/${sdk.manifestId}`);
    expect(one.status).toBe(200);
    expect(one.headers.get('cache-control')).toBe('public, max-age=30');
    expect(await one.text()).toBe(sdk.line);
    const status = await fetch(`${base}/revocation-status?manifest_id=${sdk.manifestId}`);
    expect(await status.text()).toBe(sdk.line);

    await expectError(
      await fetch(`${base}${crl}/0190b6e0-0000-7000-8000-000000000999`),
      404,
      'MANIFEST_NOT_FOUND',
    );
    await expectError(
      await fetch(`${base}/revocation-status?manifest_id=0190b6e0-0000-7000-8000-000000000999`),
      404,
      'MANIFEST_NOT_FOUND',
    );
  });

  it('refuses malformed ids with 400', async () => {
    for (const bad of [
      'has%20space',
      '%ZZ',
      'a'.repeat(200),
      'semi%3Bcolon',
      '%00',
      '-leading-dash',
      'a%2Fb',
    ]) {
      await expectError(await fetch(`${base}${crl}/${bad}`), 400, 'INVALID_REQUEST');
    }
    await expectError(await fetch(`${base}/revocation-status`), 400, 'INVALID_REQUEST');
    await expectError(
      await fetch(`${base}/revocation-status?manifest_id=a&manifest_id=b`),
      400,
      'INVALID_REQUEST',
    );
    await expectError(await fetch(`${base}/revocation-status?manifest_id=bad%20id`), 400, 'INVALID_REQUEST');
  });

  it('streams the whole CRL as x-ndjson with an ETag that changes when a record is added', async () => {
    const res = await fetch(base + crl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    expect(res.headers.get('cache-control')).toBe('public, max-age=30');
    const etag = res.headers.get('etag')!;
    const body = await res.text();
    expect(body.split('\n')).toEqual([
      sdkRevocation().line,
      syntheticRevocation('0190b6e0-0000-7000-8000-000000000111').line,
      '',
    ]);
    expect((await fetch(base + crl, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    await appendRevocations(db.pool, [syntheticRevocation('0190b6e0-0000-7000-8000-000000000112')]);
    const after = await fetch(base + crl, { headers: { 'If-None-Match': etag } });
    expect(after.status).toBe(200);
    expect((await after.text()).split('\n').length).toBe(4);
  });
});

describe('verifier check-in', () => {
  const url = (id: string) => `${base}/v1/verifiers/${id}/check-in`;
  const body = {
    anchor_version: 2,
    trusted_key_ids: [`sha256:${oldKey.keyId}`, newKey.keyId],
    valid_counts: { [newKey.keyId]: 3, [`sha256:${oldKey.keyId}`]: 0 },
  };
  const post = (id: string, payload: unknown, headers: Record<string, string> = {}) =>
    fetch(url(id), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}`, ...headers },
      body: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });

  it('answers 401 to a missing or wrong token and writes nothing', async () => {
    const missing = await fetch(url('sidecar-1'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    await expectError(missing, 401, 'UNAUTHORIZED');
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    await expectError(
      await post('sidecar-1', body, { Authorization: 'Bearer wrong-token' }),
      401,
      'UNAUTHORIZED',
    );
    await expectError(
      await post('sidecar-1', body, { Authorization: `Basic ${TOKEN}` }),
      401,
      'UNAUTHORIZED',
    );
    expect(await countVerifiers(db.pool)).toBe(0);
  });

  it('records a valid check-in', async () => {
    const res = await post('spiffe%3A%2F%2Ftrust.example%2Fverifier%2F1', body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ verifier_id: 'spiffe://trust.example/verifier/1', recorded: true });
    const v = await getVerifier(db.pool, 'spiffe://trust.example/verifier/1');
    expect(v).toMatchObject({
      identity: 'default',
      anchorVersion: 2,
      trustedKeyIds: [oldKey.keyId, newKey.keyId],
      validCounts: { [oldKey.keyId]: 0, [newKey.keyId]: 3 },
    });
  });

  it('validates every input, naming what is wrong', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['bad%20id', body, /verifier id/],
      ['v', { ...body, anchor_version: -1 }, /anchor_version/],
      ['v', { ...body, anchor_version: '2' }, /anchor_version/],
      ['v', { ...body, trusted_key_ids: ['sha256:XYZ'] }, /trusted_key_ids\[0\]/],
      ['v', { ...body, valid_counts: { [newKey.keyId]: 1.5 } }, /valid_counts/],
      ['v', { ...body, valid_counts: { nothex: 1 } }, /valid_counts key/],
      ['v', { ...body, extra: true }, /unknown field "extra"/],
      ['v', { ...body, identity: 'has space' }, /identity/],
      ['v', [1, 2], /JSON object/],
      ['v', '{"anchor_version": 2,', /not valid JSON/],
    ];
    for (const [id, payload, message] of cases) {
      const err = await expectError(await post(id, payload), 400, 'INVALID_REQUEST');
      expect(err.error_message).toMatch(message);
    }
    await expectError(await post('v', body, { 'Content-Type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const huge = { ...body, trusted_key_ids: Array.from({ length: 2000 }, () => newKey.keyId) };
    await expectError(await post('v', huge), 413, 'PAYLOAD_TOO_LARGE');
    expect(await getVerifier(db.pool, 'v')).toBeNull();
  });

  it('refuses an unregistered verifier when no shared token is configured, naming the fix', async () => {
    const open = createHttpService({ pool: db.pool, anchorMaxAgeSeconds: 60, identity: 'default' });
    const { port } = await open.listen(0);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/verifiers/v9/check-in`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer anything' },
        body: JSON.stringify(body),
      });
      const err = await expectError(res, 401, 'UNAUTHORIZED');
      expect(err.error_message).toBe(
        'verifier v9 is not registered (rotor verifier register v9 --identity …) and no shared token is configured',
      );
      expect(await getVerifier(db.pool, 'v9')).toBeNull();
    } finally {
      await open.close();
    }
  });
});

describe('routing, health and metrics', () => {
  it('answers unknown paths with 404 and wrong methods with 405', async () => {
    await expectError(await fetch(`${base}/nope`), 404, 'NOT_FOUND');
    const res = await fetch(`${base}/.well-known/agent-manifest/trust-anchor`, { method: 'DELETE' });
    await expectError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    await expectError(await fetch(`${base}/v1/verifiers/v/check-in`), 405, 'METHOD_NOT_ALLOWED');
  });

  it('reports health from Postgres', async () => {
    const ok = await fetch(`${base}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });

    // A pool pointed at a database that does not exist: the real failure, no mock.
    const url = new URL(db.url);
    url.pathname = '/rotor_no_such_database';
    const deadPool = createPool(url.toString(), 1);
    const dead = createHttpService({ pool: deadPool, anchorMaxAgeSeconds: 60, identity: 'default' });
    const { port } = await dead.listen(0);
    try {
      await expectError(await fetch(`http://127.0.0.1:${port}/healthz`), 503, 'DATABASE_UNAVAILABLE');
      await expectError(
        await fetch(`http://127.0.0.1:${port}/.well-known/agent-manifest/trust-anchor`),
        500,
        'INTERNAL_ERROR',
      );
    } finally {
      await dead.close();
      await deadPool.end();
    }
  });

  it('exposes request counts and latency per route, CRL size and anchor version', async () => {
    await fetch(`${base}/.well-known/agent-manifest/trust-anchor`);
    const { port: metricsPort } = await service.listenMetrics(0);
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(
      /rotor_http_requests_total\{route="\/\.well-known\/agent-manifest\/trust-anchor",method="GET",status="200"\} \d+/,
    );
    expect(text).toMatch(
      /rotor_http_requests_total\{route="\/\.well-known\/agent-manifest\/revocation\/\{manifest_id\}",method="GET",status="400"\}/,
    );
    expect(text).toMatch(
      /rotor_http_request_duration_seconds_bucket\{le="0\.005",route="\/\.well-known\/agent-manifest\/trust-anchor",method="GET"\}/,
    );
    expect(text).toMatch(/^rotor_crl_records 3$/m);
    expect(text).toMatch(/^rotor_trust_anchor_version\{identity="default"\} 2$/m);
  });
});
