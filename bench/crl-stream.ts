/**
 * The full CRL stream at 1M records from a real `rotor serve` process: throughput, and the
 * server's resident memory sampled from /proc through the stream, with V8's default heap and
 * with the heap capped at 32 MB (proof the live set stays small; the default lets garbage pile up
 * before collecting).
 *
 *   node --import tsx bench/crl-stream.ts [--records 1000000]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config';
import { connect } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { countRevocations } from '../src/store/revocations';
import { databaseUrlFor } from '../test/helpers/db-admin';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const records = arg('records', 1_000_000);
const rssKb = (pid: number) =>
  Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const name = `rotor_bench_crl_${randomBytes(3).toString('hex')}`;
const url = databaseUrlFor(loadConfig().databaseUrl, name);
const admin = await connect(loadConfig().databaseUrl, 1);
await admin.query(`CREATE DATABASE ${name}`);
const pool = await connect(url, 2);
try {
  await migrate(pool);
  let t = performance.now();
  const keyId = 'ab'.repeat(32);
  await pool.query(
    `INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at)
     SELECT id, json_build_object('manifest_id', id, 'revoked_at', '2026-06-05T10:00:00Z',
              'reason', 'Key rotation - old key_id=' || $2, 'revoked_by', 'spiffe://trust.example/security-team',
              'revocation_signature', repeat('A', 86), 'signer_key_id', $2)::text, $2, '2026-06-05T10:00:00Z'
       FROM (SELECT '0190b6e4-0000-7000-8000-' || lpad(g::text, 12, '0') AS id FROM generate_series(1, $1) g) s`,
    [records, keyId],
  );
  console.log(
    `${await countRevocations(pool)} records inserted in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  console.log(
    '| server heap | records | MiB | seconds | MiB/s | RSS at start | RSS at 25/50/75/100 % | peak RSS growth |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---|---:|');
  for (const heap of ['default', '32 MB cap']) {
    const flags = heap === 'default' ? [] : ['--max-old-space-size=32'];
    const child = spawn(
      process.execPath,
      [...flags, fileURLToPath(new URL('../bin/rotor-dev.mjs', import.meta.url)), 'serve'],
      {
        env: { ...process.env, DATABASE_URL: url, ROTOR_HTTP_PORT: '0', ROTOR_METRICS_PORT: '0' },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    try {
      const first = await new Promise<string>((resolve) =>
        createInterface({ input: child.stdout! }).once('line', resolve),
      );
      const base = (JSON.parse(first) as { listening: string }).listening;
      const pid = child.pid!;
      const start = rssKb(pid);
      let peak = start;
      const marks: number[] = [];
      t = performance.now();
      const res = await fetch(`${base}/.well-known/agent-manifest/revocation`);
      let bytes = 0;
      let lines = 0;
      let nextMark = records / 4;
      let sampledAt = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.length;
        for (const b of chunk) if (b === 10) lines++;
        if (lines - sampledAt >= 5000) {
          sampledAt = lines;
          peak = Math.max(peak, rssKb(pid));
        }
        if (lines >= nextMark) {
          marks.push(rssKb(pid));
          nextMark += records / 4;
        }
      }
      const seconds = (performance.now() - t) / 1000;
      if (lines !== records) throw new Error(`streamed ${lines} lines, expected ${records}`);
      const mib = bytes / 2 ** 20;
      const mb = (kb: number) => `${Math.round(kb / 1024)} MB`;
      console.log(
        `| ${heap} | ${lines} | ${mib.toFixed(0)} | ${seconds.toFixed(1)} | ${(mib / seconds).toFixed(0)} | ${mb(start)} | ` +
          `${marks.map(mb).join(' / ')} | ${mb(peak - start)} |`,
      );
    } finally {
      child.kill('SIGTERM');
    }
  }
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
