/**
 * The CRL delta protocol on a real `rotor serve` process over Postgres (README "CRL deltas"):
 * `?since=<seq>` returns only the records after seq, CRL-Head names the head the ETag is derived
 * from, the full list stays a FileCRL byte for byte, appends that commit out of order are never
 * skipped, bad `since` values get one-line errors, and compaction takes expired manifests' records
 * out of what is served while the archive and the audit log keep them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signManifest, softwareSigner } from '../../src/manifest';
import { listAudit } from '../../src/store/audit';
import { insertManifest } from '../../src/store/manifests';
import {
  appendRevocations,
  compactCrl,
  countRevocations,
  crlHead,
  getRevocation,
} from '../../src/store/revocations';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { type RotorServe, startRotorServe } from '../helpers/rotor-serve';
import { validUnsigned } from '../manifest/vectors';
import { syntheticRevocation } from '../store/fixtures';

const CRL = '/.well-known/agent-manifest/revocation';
let db: TestDatabase;
let serve: RotorServe;

const id = (n: number) => `0190b6e5-0000-7000-8000-${String(n).padStart(12, '0')}`;
const record = (n: number) => syntheticRevocation(id(n));

async function get(query = '', headers: Record<string, string> = {}) {
  const res = await fetch(`${serve.baseUrl}${CRL}${query}`, { headers });
  const text = await res.text();
  return {
    status: res.status,
    text,
    lines: text === '' ? [] : text.replace(/\n$/, '').split('\n'),
    head: res.headers.get('crl-head'),
    horizon: res.headers.get('crl-horizon'),
    etag: res.headers.get('etag'),
    cacheControl: res.headers.get('cache-control'),
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  serve = await startRotorServe(db.url, { ROTOR_CHECKIN_TOKEN: 'unused' });
});

afterAll(async () => {
  await serve?.stop();
  await db?.drop();
});

describe('CRL deltas', () => {
  it('serves the full list exactly as signed and deltas after a head, the ETag following the head', async () => {
    const empty = await get();
    expect(empty).toMatchObject({ status: 200, text: '', head: '0', horizon: '0', etag: '"crl-0"' });

    const first = [record(1), record(2), record(3)];
    await appendRevocations(db.pool, first);
    const full = await get();
    const h1 = Number(full.head);
    expect(h1).toBe((await getRevocation(db.pool, id(3)))!.seq);
    // One line per record, the stored (signed) line with nothing added: what FileCRL reads.
    expect(full.text).toBe(`${first.map((r) => r.line).join('\n')}\n`);
    expect(full.etag).toBe(`"crl-${h1}"`);
    expect(full.cacheControl).toBe('public, max-age=30');
    expect((await get('', { 'If-None-Match': full.etag! })).status).toBe(304);

    // From the first record's seq: only the two after it.
    const s1 = (await getRevocation(db.pool, id(1)))!.seq;
    const fromFirst = await get(`?since=${s1}`);
    expect(fromFirst.lines).toEqual([first[1]!.line, first[2]!.line]);
    expect(fromFirst.head).toBe(String(h1));
    // At the head: nothing new, an empty 200 naming the same head.
    const atHead = await get(`?since=${h1}`);
    expect(atHead).toMatchObject({ status: 200, text: '', head: String(h1) });
    expect(atHead.etag).not.toBe(full.etag);
    expect((await get(`?since=${h1}`, { 'If-None-Match': atHead.etag! })).status).toBe(304);

    // A re-revocation of a manifest_id already listed adds nothing: head and ETag stay.
    await appendRevocations(db.pool, [record(2)]);
    expect((await get()).etag).toBe(full.etag);

    await appendRevocations(db.pool, [record(4)]);
    const delta = await get(`?since=${h1}`);
    expect(delta.lines).toEqual([record(4).line]);
    expect(Number(delta.head)).toBeGreaterThan(h1);
    expect((await get('', { 'If-None-Match': full.etag! })).status).toBe(200);
  });

  it('refuses malformed since values with a one-line 400 and a since ahead of the head with 409', async () => {
    for (const bad of ['abc', '-1', '1.5', '01', '', '1e3', '%201', '99999999999999999', 'since']) {
      const res = await get(`?since=${bad}`);
      expect(res.status).toBe(400);
      const body = JSON.parse(res.text) as { error_code: string; error_message: string };
      expect(body.error_code).toBe('INVALID_REQUEST');
      expect(body.error_message).toMatch(/^since must be a CRL sequence number/);
      expect(body.error_message).not.toContain('\n');
    }
    const twice = JSON.parse((await get('?since=1&since=2')).text) as { error_message: string };
    expect(twice.error_message).toBe('give at most one since query parameter');

    const head = (await crlHead(db.pool)).head;
    const ahead = await get(`?since=${head + 1}`);
    expect(ahead.status).toBe(409);
    expect(ahead.head).toBe(String(head));
    expect(JSON.parse(ahead.text)).toMatchObject({
      error_code: 'CRL_SINCE_AHEAD',
      error_message: `since=${head + 1} is ahead of the CRL head ${head}: fetch the full list`,
    });
  });

  it('never skips a record whose transaction commits after one with a higher position', async () => {
    // A holds an open transaction with a record; B's append waits for it; A appends again and
    // commits; a reader takes the head; only then does B commit. Positions drawn when rows are
    // built (004's identity alone) give B's record a seq below A's second one, so the delta after
    // that head would miss it; drawn under the crl_state lock (080), B's comes after.
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    try {
      const bPid = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await a.query('BEGIN');
      await appendRevocations(a, [record(10)]);
      await b.query('BEGIN');
      const bAppend = appendRevocations(b, [record(11)]);
      for (;;) {
        const { rows } = await db.pool.query<{ wait: string | null }>(
          'SELECT wait_event_type AS wait FROM pg_stat_activity WHERE pid = $1',
          [bPid],
        );
        if (rows[0]?.wait === 'Lock') break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await appendRevocations(a, [record(12)]);
      await a.query('COMMIT');
      await bAppend;
      const seen = await get();
      expect(seen.lines).toContain(record(12).line);
      expect(seen.lines).not.toContain(record(11).line);
      await b.query('COMMIT');
      const next = await get(`?since=${seen.head}`);
      expect(next.lines).toEqual([record(11).line]);
    } finally {
      a.release();
      b.release();
    }
  });

  it('compacts expired manifests out of the served list, keeping the archive and the audit log', async () => {
    const signer = softwareSigner(new Uint8Array(32).fill(21));
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    const manifest = async (n: number, expiresAt: Date) => {
      const text = JSON.stringify(
        validUnsigned({
          manifest_id: id(n),
          agent_id: `spiffe://trust.example/agent/c${n}`,
          issued_at: new Date(now - 60 * day).toISOString().replace(/\.\d+Z$/, 'Z'),
          expires_at: expiresAt.toISOString().replace(/\.\d+Z$/, 'Z'),
        }),
      );
      await insertManifest(db.pool, {
        text: (await signManifest(text, signer, { signedAt: new Date(now - day) })).text,
      });
    };
    await manifest(20, new Date(now - 2 * day)); // expired two days ago: compacted
    await manifest(21, new Date(now - 10 * 60 * 1000)); // ten minutes ago: within the hour's margin
    await manifest(22, new Date(now + 30 * day)); // in force
    await appendRevocations(db.pool, [record(20), record(21), record(22)]);
    // record(1) names a manifest rotor does not store: never compacted.
    const before = await get();
    const archived = await countRevocations(db.pool);

    const result = await compactCrl(db.pool, { actor: 'test' });
    expect(result.compacted).toBe(1);
    expect(result.horizon).toBe(result.head);
    expect(result.head).toBeGreaterThan(Number(before.head));
    const after = await get();
    expect(after.head).toBe(String(result.head));
    expect(after.horizon).toBe(String(result.horizon));
    expect(after.etag).toBe(`"crl-${result.head}"`);
    expect(after.lines).toEqual(before.lines.filter((l) => l !== record(20).line));
    expect(after.lines).toContain(record(21).line);
    expect(after.lines).toContain(record(1).line);
    expect(result.served).toBe(after.lines.length);
    // The archive keeps the record, served by id, and the audit log says what was compacted.
    expect(await countRevocations(db.pool)).toBe(archived);
    expect((await getRevocation(db.pool, id(20)))!.line).toBe(record(20).line);
    const audit = (await listAudit(db.pool, { subject: 'crl' })).at(-1)!;
    expect(audit).toMatchObject({ action: 'crl.compacted', actor: 'test' });
    expect(audit.details).toMatchObject({ compacted: 1, horizon: result.horizon, marginSeconds: 3600 });

    // A position before the horizon cannot learn what was removed: 410, fetch the full list.
    const stale = await get(`?since=${before.head}`);
    expect(stale.status).toBe(410);
    expect(stale.horizon).toBe(String(result.horizon));
    expect(JSON.parse(stale.text)).toMatchObject({ error_code: 'CRL_SINCE_COMPACTED' });
    expect(await get(`?since=${result.horizon}`)).toMatchObject({ status: 200, text: '' });

    // Nothing more to compact: head and horizon stay, so deltas from the horizon keep working.
    expect(await compactCrl(db.pool, { actor: 'test' })).toMatchObject({ compacted: 0, head: result.head });
    await appendRevocations(db.pool, [record(23)]);
    expect((await get(`?since=${result.horizon}`)).lines).toEqual([record(23).line]);
    // With no margin, the one that expired ten minutes ago goes too.
    expect((await compactCrl(db.pool, { actor: 'test', marginSeconds: 0 })).compacted).toBe(1);
    expect((await get()).lines).not.toContain(record(21).line);
  });
});
