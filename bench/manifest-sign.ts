/**
 * Interop-core throughput on one core for a ~1.3 KB manifest, beside raw node:crypto (OpenSSL)
 * sign and verify in the same run. Run: `node --import tsx bench/manifest-sign.ts`
 * (ROTOR_BENCH_SECONDS sets the time per case; default 1.5). Throughput is given per second of
 * this process's CPU time (one core's worth, robust to other load) and per wall-clock second.
 */
import { sign, verify } from 'node:crypto';
import {
  b64urlDecode,
  keyIdOf,
  parseJson,
  privateKeyFromSeed,
  publicKeyFromSeed,
  publicKeyObject,
  reissueManifest,
  signingPreImage,
  signManifest,
  softwareSigner,
  verifyManifest,
} from '../src/manifest/index';

const SECONDS = Number(process.env.ROTOR_BENCH_SECONDS ?? '1.5');
const seed = b64urlDecode('AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8');
const signer = softwareSigner(seed);
const publicKey = publicKeyFromSeed(seed);
const now = new Date('2026-06-05T10:00:00Z');

/** A manifest shaped like a production one: artifacts, delegation, HITL, intent, ~1.3 KB. */
export function sampleManifest(i: number): string {
  const hex = (n: number) => (n * 2654435761 + i).toString(16).padStart(8, '0').repeat(8).slice(0, 64);
  return JSON.stringify({
    '@context': 'https://agentmanifest.org/v0.1/context.json',
    '@type': 'AgentManifest',
    manifest_id: `0190b6e0-${(i % 65536).toString(16).padStart(4, '0')}-7000-8000-${i.toString(16).padStart(12, '0')}`,
    agent_id: `spiffe://trust.acme.co/agent/kyc-${i}/prod`,
    version: '0.1',
    issued_at: '2026-01-01T00:00:00Z',
    expires_at: '2099-12-31T23:59:59Z',
    issuer: 'spiffe://trust.acme.co/signing-authority',
    crypto_profile: 'standard',
    artifacts: {
      system_prompt: { hash: `sha256:${hex(1)}` },
      policy_bundle: { hash: `sha256:${hex(2)}`, version: '2026.05.1' },
      tool_manifest: { catalog_hash: `sha256:${hex(3)}`, tool_count: 12 },
      model_identity: { model_hash: null, version: 'claude-3', deployment_type: 'api' },
      rag_corpus: {
        merkle_root: `sha256:${hex(4)}`,
        document_count: 18234,
        poisoning_scan: { result: 'clean' },
      },
    },
    delegation_chain: [],
    hitl_record: { required: true, escalation_policy: 'block', approvals: [] },
    data_scope: { ttl_days: 30, regions: ['eu-west-1', 'eu-central-1'], pii: false },
    intent: { statement: 'Know-your-customer checks for retail onboarding (Café ops)', score: 0.95 },
  });
}

interface Row {
  name: string;
  /** Operations per second of this process's CPU time: what one core does, whatever else runs. */
  perCpuSecond: number;
  perWallSecond: number;
}

/** Each case runs alone for its time slice, so its garbage is collected on its own account. */
async function measure(cases: [string, (i: number) => unknown][]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [name, fn] of cases) {
    for (let i = 0; i < 2000; i++) await fn(i);
    const wall0 = performance.now();
    const cpu0 = process.cpuUsage();
    let n = 0;
    while (performance.now() - wall0 < SECONDS * 1000) for (let k = 0; k < 100; k++) await fn(n++);
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    rows.push({
      name,
      perCpuSecond: (n / cpuMs) * 1000,
      perWallSecond: (n / (performance.now() - wall0)) * 1000,
    });
  }
  return rows;
}

async function main(): Promise<void> {
  const texts = Array.from({ length: 1000 }, (_, i) => sampleManifest(i));
  const bytes = Buffer.byteLength(texts[0]!, 'utf8');
  const privateKey = privateKeyFromSeed(seed);
  const keyObject = publicKeyObject(publicKey);
  const preImages = texts.map((t) => signingPreImage(parseJson(t)));
  const signatures = preImages.map((p) => sign(null, p, privateKey));
  const signed = await Promise.all(texts.map((t) => signManifest(t, signer, { signedAt: now })));
  const trustedKeys = new Map([[keyIdOf(publicKey), publicKey]]);
  const pick = <T>(arr: T[], i: number) => arr[i % arr.length]!;

  const rows = await measure([
    ['raw node:crypto sign (pre-image given)', (i) => sign(null, pick(preImages, i), privateKey)],
    [
      'raw node:crypto verify (pre-image given)',
      (i) => verify(null, pick(preImages, i), keyObject, pick(signatures, i)),
    ],
    ['parse + pre-image (no signing)', (i) => signingPreImage(parseJson(pick(texts, i)))],
    ['parse + pre-image + sign', (i) => signer.sign(signingPreImage(parseJson(pick(texts, i))))],
    [
      'signManifest (+ signature block spliced in)',
      (i) => signManifest(pick(texts, i), signer, { signedAt: now }),
    ],
    ['reissueManifest (spec 3.8, signed)', (i) => reissueManifest(pick(texts, i), signer, { now })],
    [
      'verifyManifest (parse, checks, pre-image, verify)',
      (i) => verifyManifest(pick(signed, i).text, { trustedKeys, now }),
    ],
  ]);

  const load = (await import('node:os')).loadavg()[0]!.toFixed(1);
  process.stdout.write(
    `manifest: ${bytes} bytes; ~${SECONDS}s per case; node ${process.version}; load average ${load}\n`,
  );
  process.stdout.write(`${'case'.padEnd(52)} ${'per CPU-s'.padStart(10)} ${'per wall-s'.padStart(11)}\n`);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  for (const r of rows) {
    process.stdout.write(
      `${r.name.padEnd(52)} ${fmt(r.perCpuSecond).padStart(10)} ${fmt(r.perWallSecond).padStart(11)}\n`,
    );
  }
}

if (process.argv[1]?.endsWith('manifest-sign.ts')) await main();
