/**
 * Signing throughput of the custodians: SoftHSM2 through PKCS#11 with 1 and N pooled sessions,
 * beside the software custodian. Each case signs ~600-byte messages (a manifest pre-image's size)
 * for a fixed time with a fixed number of signatures in flight.
 *
 *   node --import tsx bench/hsm-sign.ts [--seconds 1.5] [--write]
 *
 * --write replaces the "## Key custody" section of BENCHMARKS.md with the table.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPkcs11Custodian } from '../src/custody/pkcs11';
import { openSoftwareCustodian } from '../src/custody/software';
import { createSoftHsmToken } from '../src/hsm/softhsm-token';
import { ed25519Verify } from '../src/manifest/keys';
import type { Signer } from '../src/manifest/signer';

interface Result {
  name: string;
  sessions: number | '—';
  inFlight: number;
  perSecond: number;
}

const ROUNDS = 3;

/** The median of a few short rounds: the machine is shared, and one busy moment should not decide. */
async function measure(signer: Signer, inFlight: number, seconds: number): Promise<number> {
  const message = randomBytes(600);
  // Warm-up, and a check that what is measured is a valid signature.
  const signature = await signer.sign(message);
  if (!ed25519Verify(signer.publicKey, message, signature))
    throw new Error('benchmark signer made a bad signature');
  const rates: number[] = [];
  for (let i = 0; i < ROUNDS; i++) rates.push(await round(signer, message, inFlight, seconds / ROUNDS));
  return rates.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

async function round(
  signer: Signer,
  message: Uint8Array,
  inFlight: number,
  seconds: number,
): Promise<number> {
  let count = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await signer.sign(message);
        count++;
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}

export async function runHsmSignBench(seconds = 1.5): Promise<Result[]> {
  const results: Result[] = [];
  const keyDir = mkdtempSync(join(tmpdir(), 'rotor-bench-keys-'));
  const token = await createSoftHsmToken({ label: `rotor-bench-${randomBytes(3).toString('hex')}` });
  // SoftHSM reads its configuration when the module is initialised, i.e. at the first open below.
  process.env.SOFTHSM2_CONF = token.confPath;
  try {
    const software = await openSoftwareCustodian({ dir: keyDir });
    const softwareSigner = await software.signer((await software.generate('bench')).handle);
    for (const inFlight of [1, 8]) {
      results.push({
        name: 'software (node:crypto)',
        sessions: '—',
        inFlight,
        perSecond: await measure(softwareSigner, inFlight, seconds),
      });
    }
    for (const sessions of [1, 2, 4]) {
      const custodian = await openPkcs11Custodian({
        modulePath: token.modulePath,
        tokenLabel: token.label,
        pin: token.pin,
        sessions,
      });
      try {
        const key = (await custodian.lookup('bench')) ?? (await custodian.generate('bench'));
        const signer = await custodian.signer(key.handle);
        const cases = sessions === 1 ? [1, 8] : [8];
        for (const inFlight of cases) {
          results.push({
            name: 'pkcs11 (SoftHSM2)',
            sessions,
            inFlight,
            perSecond: await measure(signer, inFlight, seconds),
          });
        }
      } finally {
        await custodian.close();
      }
    }
  } finally {
    token.remove();
    rmSync(keyDir, { recursive: true, force: true });
  }
  return results;
}

export function markdown(results: Result[], seconds: number): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.sessions} | ${r.inFlight} | ${Math.round(r.perSecond).toLocaleString('en-US')} |`,
  );
  return [
    '## Key custody',
    '',
    `Ed25519 signatures per second over a 600-byte message: median of ${ROUNDS} rounds in ${seconds} s per case, on`,
    `${availableParallelism()} shared cores (${cpu}, load average ${loadavg()[0]!.toFixed(1)} at the end of the run), Node ${process.versions.node},`,
    `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}. Command: \`node --import tsx bench/hsm-sign.ts --write\`.`,
    '',
    '| custodian | sessions | signatures in flight | signatures/s |',
    '|---|---|---|---|',
    ...rows,
    '',
    'PKCS#11 signing runs on libuv worker threads (`C_SignAsync`), one operation per pooled session, so',
    'sessions sign side by side up to the number of cores (and at most UV_THREADPOOL_SIZE at once).',
    'With one session extra signatures in flight only queue. Every case first checks that its signature verifies.',
    'The cores are shared with other work (see the load average): rows of one run compare, runs vary by tens of percent.',
    '',
  ].join('\n');
}

function writeSection(section: string, file = 'BENCHMARKS.md'): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = '# Benchmarks\n\n';
  }
  const start = text.indexOf('## Key custody');
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section}`;
  } else {
    const next = text.indexOf('\n## ', start + 1);
    text = text.slice(0, start) + section + (next === -1 ? '' : `\n${text.slice(next + 1)}`);
  }
  writeFileSync(file, text);
}

const isMain = process.argv[1] !== undefined && /hsm-sign\.ts$/.test(process.argv[1]);
if (isMain) {
  const args = process.argv.slice(2);
  const secondsArg = args.indexOf('--seconds');
  const seconds = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 1.5;
  if (!(seconds > 0)) throw new Error('--seconds takes a positive number');
  const section = markdown(await runHsmSignBench(seconds), seconds);
  process.stdout.write(`${section}\n`);
  if (args.includes('--write')) {
    writeSection(section);
    process.stderr.write('BENCHMARKS.md: "## Key custody" updated\n');
  }
}
