/**
 * Manifest import throughput: synthetic signed manifests (software key, in memory) imported into
 * a fresh database in batches, then imported again (every record a duplicate). Signing time is
 * measured apart, so the figure is the store's, not the signer's.
 *
 *   node --import tsx bench/import.ts [--count 20000] [--batch 500]
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config';
import { softwareSigner } from '../src/manifest';
import { connect } from '../src/store/db';
import { registerKey } from '../src/store/keys';
import { importManifests } from '../src/store/manifests';
import { migrate } from '../src/store/migrate';
import { syntheticManifests } from '../src/synthetic/manifests';
import { databaseUrlFor } from '../test/helpers/db-admin';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const count = arg('count', 20_000);
const batch = arg('batch', 500);
const name = `rotor_bench_import_${randomBytes(3).toString('hex')}`;
const admin = await connect(loadConfig().databaseUrl, 1);
await admin.query(`CREATE DATABASE ${name}`);
const pool = await connect(databaseUrlFor(loadConfig().databaseUrl, name), 4);
try {
  await migrate(pool);
  const signer = softwareSigner(randomBytes(32));
  // The import verifies each manifest under the registry's key for its key_id: register it.
  await registerKey(pool, {
    keyId: signer.keyId,
    identity: 'bench',
    publicKey: signer.publicKey,
    custodian: 'software',
    handle: 'bench-unused',
    state: 'active',
  });
  let t = performance.now();
  const texts: string[] = [];
  for await (const text of syntheticManifests(count, signer, { seed: 7 })) texts.push(text);
  const signSeconds = (performance.now() - t) / 1000;
  const bytes = texts.reduce((n, s) => n + Buffer.byteLength(s), 0);

  async function importAll(): Promise<{ seconds: number; imported: number; duplicates: number }> {
    const start = performance.now();
    let imported = 0;
    let duplicates = 0;
    for (let i = 0; i < texts.length; i += batch) {
      const r = await importManifests(
        pool,
        texts.slice(i, i + batch).map((text, j) => ({ text, source: `bench:${i + j + 1}` })),
      );
      imported += r.imported;
      duplicates += r.duplicates;
    }
    return { seconds: (performance.now() - start) / 1000, imported, duplicates };
  }
  const first = await importAll();
  const again = await importAll();
  t = performance.now();
  const rows = [
    ['generate + sign (software key)', count, signSeconds],
    [`import, new (batches of ${batch})`, first.imported, first.seconds],
    [`import again, all duplicates`, again.duplicates, again.seconds],
  ] as const;
  console.log(`${count} manifests, ${(bytes / count).toFixed(0)} bytes each on average`);
  console.log('| step | manifests | seconds | manifests/s |');
  console.log('|---|---:|---:|---:|');
  for (const [step, n, s] of rows) console.log(`| ${step} | ${n} | ${s.toFixed(2)} | ${Math.round(n / s)} |`);
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
