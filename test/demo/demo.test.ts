/**
 * `rotor demo` end to end, as a person runs it: a child process with nothing configured (no
 * DATABASE_URL: the embedded Postgres), then its output files checked here on their own with the
 * interop core. Also: Ctrl-C stops what it started; with DATABASE_URL and a SoftHSM token it
 * rotates in its own database (dropped afterwards) with the HSM custodian.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { verifyOutputs } from '../../src/demo/outputs';
import type { DemoSummary } from '../../src/demo/summary';
import {
  b64urlDecode,
  examineEnvelope,
  readCrl,
  trustedKeysFromAnchor,
  unverifiedAnchorPayload,
  validateSignedAnchorPayload,
  validateTrustAnchor,
  verifyCoseEnvelope,
  verifySignedAnchor,
} from '../../src/manifest';
import { connect } from '../../src/store/db';
import { MARK_VARIABLE } from '../helpers/processes';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COUNT = 200;
/**
 * The runbook's hour in 36 s: re-sign at +6s, adoption by +18s, revoke at +21s, decommission at
 * +36s. At 24 s a re-sign slowed by a loaded 2-core machine (load 16 to 27: 200 manifests in about
 * 8 s) ran past the adoption bound and the rotation paused, as it should; 36 s leaves it room.
 */
const TIMELINE = '36';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/rotor-dev.mjs demo …` with exactly `env` (plus PATH and HOME), killed after `timeoutMs`. */
function runDemo(
  args: string[],
  env: NodeJS.ProcessEnv,
  onStart?: (child: ChildProcess) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/rotor-dev.mjs', 'demo', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    onStart?.(child);
  });
}

/** Settings that would change what the demo does, taken away so each test sets its own. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // MARK_VARIABLE: what the demo starts is found by the run's leftover check (test/global-setup.ts).
  for (const name of ['TEMPORAL_CLI', 'ROTOR_CACHE_DIR', 'GO_BINARY', MARK_VARIABLE]) {
    if (process.env[name]) env[name] = process.env[name];
  }
  return env;
}

interface Outputs {
  summary: DemoSummary;
  /** manifests.jsonl: v0.1 texts (none after the migration). */
  manifestLines: string[];
  /** manifests-cose.jsonl: v0.2 envelopes as hex. */
  coseLines: string[];
  anchorText: string;
  crlText: string;
  jwsText: string;
}

async function readOutputs(dir: string): Promise<Outputs> {
  const manifestLines = (await readFile(join(dir, 'manifests.jsonl'), 'utf8')).split('\n');
  expect(manifestLines.pop()).toBe('');
  const coseLines = (await readFile(join(dir, 'manifests-cose.jsonl'), 'utf8')).split('\n');
  expect(coseLines.pop()).toBe('');
  return {
    summary: JSON.parse(await readFile(join(dir, 'summary.json'), 'utf8')) as DemoSummary,
    manifestLines,
    coseLines,
    anchorText: await readFile(join(dir, 'trust-anchor.json'), 'utf8'),
    crlText: await readFile(join(dir, 'crl.jsonl'), 'utf8'),
    jwsText: await readFile(join(dir, 'trust-anchor.jws'), 'utf8'),
  };
}

/** The outputs, checked with the interop core alone; returns the new key and the revoked ids. */
async function expectOutputsVerify(o: Outputs, keyType: 'software' | 'hsm') {
  const anchor = validateTrustAnchor(JSON.parse(o.anchorText));
  expect(anchor.keys).toHaveLength(1);
  const newKeyId = anchor.active_key_id.slice('sha256:'.length);
  // CRL records are signed by the revocation authority the signed anchor lists (issue 12).
  const named = validateSignedAnchorPayload(unverifiedAnchorPayload(o.jwsText));
  const signed = verifySignedAnchor(o.jwsText, {
    trusted: {
      threshold: named.root.threshold,
      keys: named.root.keys.map((k) => ({ kid: k.kid, publicKey: b64urlDecode(k.public_key) })),
    },
    now: new Date(),
  });
  expect(signed.document.active_key_id).toBe(anchor.active_key_id);
  const authority = signed.payload.revocation_key!;
  const signers = trustedKeysFromAnchor(anchor);
  signers.set(authority.key_id, b64urlDecode(authority.public_key));
  const crl = await readCrl(o.crlText, signers);
  expect(crl.rejected).toEqual([]);
  expect(crl.accepted).toHaveLength(COUNT);
  const revoked = new Set(crl.accepted.map((r) => r.manifestId));
  expect(revoked.size).toBe(COUNT);

  // The seeded store mixes v0.1 and v0.2; the rotation (reissueAs "0.2") leaves only v0.2 twins.
  expect(o.manifestLines).toHaveLength(0);
  expect(o.coseLines).toHaveLength(COUNT);
  const trusted = trustedKeysFromAnchor(anchor, { now: new Date() });
  const predecessors = new Set<string>();
  for (const [i, line] of o.coseLines.entries()) {
    const envelope = Uint8Array.from(Buffer.from(line, 'hex'));
    const verdict = verifyCoseEnvelope(envelope, {
      trustedKeys: trusted,
      revokedIds: revoked,
      now: new Date(),
    });
    expect(verdict, `manifests-cose.jsonl line ${i + 1}`).toMatchObject({ result: 'VALID', keyId: newKeyId });
    const e = examineEnvelope(envelope);
    expect(e.manifest.get('version')).toBe('0.2');
    // Re-issued per spec 3.8: a twin of one old manifest, whose id is on the CRL.
    expect(e.manifest.has('attestation')).toBe(false);
    predecessors.add((e.manifest.get('previous_manifest_id') as string) ?? '(none)');
  }
  // A v0.2 envelope names no key_type (v0.1's signature block did): the new key's custodian says it.
  expect(o.summary.keys.custodian).toBe(keyType === 'hsm' ? 'pkcs11' : 'software');
  expect(predecessors).toEqual(revoked);
  for (const r of crl.accepted.slice(0, 20)) {
    expect(r.signerKeyId).toBe(authority.key_id);
    expect(r.reason).toMatch(/^Key rotation - old key_id=[0-9a-f]{64}$/);
    expect(r.reason).not.toContain(newKeyId);
  }
  return { anchor, newKeyId, revoked };
}

function expectCompletedSummary(s: DemoSummary, newKeyId: string) {
  expect(s.ok).toBe(true);
  expect(s.phase).toBe('completed');
  expect(s.trigger).toBe('scheduled');
  expect(s.timelineSeconds).toBe(Number(TIMELINE));
  expect(s.timeline.map((e) => e.step)).toEqual([
    'preflight',
    'keygen',
    're-sign',
    'publish-anchor',
    'await-adoption',
    'pre-revocation',
    'revoke',
    'decommission',
  ]);
  for (const e of s.timeline) {
    expect(e.actualEnd, e.step).not.toBeNull();
    // Durable timers: no step started before its planned offset.
    expect(e.startedOffsetSeconds!, e.step).toBeGreaterThanOrEqual(e.plannedOffsetSeconds - 0.1);
  }
  expect(s.timeline.find((e) => e.step === 'decommission')!.plannedOffsetSeconds).toBe(Number(TIMELINE));
  expect(s.keys.newKeyId).toBe(newKeyId);
  expect(s.keys.oldKeyId).not.toBe(newKeyId);
  expect(s.counts).toEqual({
    seeded: COUNT,
    resigned: COUNT,
    revoked: COUNT,
    activeAfter: COUNT,
    unresignable: 0,
  });
  expect(s.crl.records).toBe(COUNT);
  expect(s.anchor.version).toBe(3);
  // The cache lifetime shrinks with the timeline (src/demo/timeline.ts): a twelfth of it.
  expect(s.policy.anchorMaxAgeSeconds).toBe(Math.round(Number(TIMELINE) / 12));
  // Both verifiers were seen holding the new anchor, and each verified manifests of the new key.
  expect(s.verifiers.map((v) => v.id)).toEqual(['sidecar-a', 'sidecar-b']);
  for (const v of s.verifiers) {
    expect(v.adoptedAtSeconds, v.id).not.toBeNull();
    expect(v.validByKey[newKeyId] ?? 0, v.id).toBeGreaterThan(0);
    expect(v.verdicts.INVALID, v.id).toBe(0);
  }
  expect(s.verification).toMatchObject({
    ok: true,
    problems: [],
    manifests: { total: COUNT, valid: COUNT },
    crl: { lines: COUNT, accepted: COUNT, rejected: 0 },
    oldRevoked: { expected: COUNT, revoked: COUNT },
  });
}

describe('rotor demo with nothing configured (embedded Postgres, software custodian)', () => {
  let dir: string;
  let run: Run;
  let outputs: Outputs;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rotor-demo-test-'));
    run = await runDemo(['--count', String(COUNT), '--timeline-seconds', TIMELINE, '--out', dir], baseEnv());
    outputs = await readOutputs(dir).catch(() => undefined as unknown as Outputs);
  }, 300_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 having started an embedded Postgres and a Temporal dev server of its own', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/Postgres: embedded PostgreSQL on 127\.0\.0\.1:\d+ \(DATABASE_URL unset\)/);
    expect(run.stderr).toMatch(/Temporal dev server on 127\.0\.0\.1:\d+/);
    expect(run.stderr).toMatch(/rotor demo: OK\n$/);
    expect(run.stdout).toBe('');
  });

  it('writes outputs that verify on their own: every manifest VALID, every CRL line accepted, every old id revoked', async () => {
    const { newKeyId } = await expectOutputsVerify(outputs, 'software');
    expectCompletedSummary(outputs.summary, newKeyId);
    expect(outputs.summary.environment.database).toBe('embedded PostgreSQL');
  });

  it('prints the summary a person reads: timeline, counts, anchor version, CRL size, verification', () => {
    expect(run.stderr).toMatch(
      new RegExp(`rotation completed .* in [\\d.]+ s, timeline planned ${TIMELINE} s`),
    );
    // Planned at the timeline's end; started then or within a few seconds after.
    const decommission = new RegExp(`decommission +\\+${TIMELINE}s +\\+(\\d+\\.\\d)s`).exec(run.stderr);
    expect(decommission, 'the decommission line of the timeline').not.toBeNull();
    expect(Number(decommission![1])).toBeGreaterThanOrEqual(Number(TIMELINE));
    expect(Number(decommission![1])).toBeLessThan(Number(TIMELINE) + 6);
    expect(run.stderr).toContain(
      `manifests  ${COUNT} seeded, ${COUNT} re-issued, ${COUNT} revoked, ${COUNT} active after`,
    );
    expect(run.stderr).toContain(
      `versions   before: ${COUNT * 0.75} v0.1 + ${COUNT * 0.25} v0.2; active after: 0 v0.1 + ${COUNT} v0.2 (reissueAs 0.2)`,
    );
    expect(run.stderr).toMatch(/anchor +version 3, 1 key\(s\)/);
    expect(run.stderr).toMatch(new RegExp(`CRL +${COUNT} record\\(s\\)`));
    expect(run.stderr).toContain(
      `${COUNT}/${COUNT} manifests VALID under trust-anchor.json + crl.jsonl; ${COUNT}/${COUNT} CRL lines accepted; ${COUNT}/${COUNT} old manifest ids revoked`,
    );
  });

  it('names what fails when an output is tampered with', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'rotor-demo-tampered-'));
    try {
      await cp(dir, copy, { recursive: true });
      const oldIds = new Set(
        outputs.coseLines.map(
          (l) =>
            examineEnvelope(Uint8Array.from(Buffer.from(l, 'hex'))).manifest.get(
              'previous_manifest_id',
            ) as string,
        ),
      );
      const newKeyId = outputs.summary.keys.newKeyId!;
      const lines = [...outputs.coseLines];
      // The payload is signed: one byte changed in the middle of the twin on line 7 breaks it.
      const bytes = Buffer.from(lines[6]!, 'hex');
      bytes[Math.floor(bytes.length / 2)]! ^= 1;
      lines[6] = bytes.toString('hex');
      await writeFile(join(copy, 'manifests-cose.jsonl'), `${lines.join('\n')}\n`);
      const crlLines = outputs.crlText.split('\n').filter(Boolean);
      await writeFile(join(copy, 'crl.jsonl'), `${crlLines.slice(1).join('\n')}\n`);
      const dropped = JSON.parse(crlLines[0]!).manifest_id as string;

      const report = await verifyOutputs(copy, { oldManifestIds: oldIds, newKeyId, now: new Date() });
      expect(report.ok).toBe(false);
      expect(report.manifests).toEqual({ total: COUNT, valid: COUNT - 1, v01: 0, v02: COUNT });
      expect(report.oldRevoked).toEqual({ expected: COUNT, revoked: COUNT - 1 });
      expect(report.problems).toContain(`old manifest_id ${dropped} is not revoked by crl.jsonl`);
      expect(report.problems.some((p) => p.startsWith('manifests-cose.jsonl line 7: INVALID'))).toBe(true);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});

/** Resolves true when something accepts a TCP connection on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('rotor demo interrupted', () => {
  it('stops the Temporal dev server, Postgres and the HTTP service it started, and exits 130', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rotor-demo-interrupted-'));
    let seenPorts: number[] = [];
    let upBefore: boolean[] = [];
    try {
      const run = await runDemo(
        ['--count', '50', '--timeline-seconds', '60', '--out', dir],
        baseEnv(),
        (child) => {
          let text = '';
          const onData = (c: Buffer) => {
            text += c.toString();
            if (!text.includes('started rotation')) return;
            child.stderr!.off('data', onData);
            seenPorts = [
              /Temporal dev server on 127\.0\.0\.1:(\d+)/,
              /embedded PostgreSQL on 127\.0\.0\.1:(\d+)/,
              /HTTP service on http:\/\/127\.0\.0\.1:(\d+)/,
            ].map((re) => Number(re.exec(text)?.[1] ?? 0));
            void Promise.all(seenPorts.map(listening)).then((up) => {
              upBefore = up;
              child.kill('SIGINT');
            });
          };
          child.stderr!.on('data', onData);
        },
      );
      expect(run.code, run.stderr).toBe(130);
      expect(
        seenPorts.every((p) => p > 0),
        run.stderr,
      ).toBe(true);
      // Everything was up while the rotation ran, and nothing is after.
      expect(upBefore).toEqual([true, true, true]);
      expect(run.stderr).toContain('rotor: interrupted: stopped everything the demo started');
      expect(await Promise.all(seenPorts.map(listening))).toEqual([false, false, false]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(!inject('softhsm').available)('rotor demo with DATABASE_URL and a SoftHSM token', () => {
  it('rotates in a database of its own, dropped afterwards, with keys made in the HSM', async () => {
    const hsm = inject('softhsm');
    const adminUrl = inject('adminDatabaseUrl');
    const dir = await mkdtemp(join(tmpdir(), 'rotor-demo-softhsm-'));
    try {
      const run = await runDemo(['--count', String(COUNT), '--timeline-seconds', TIMELINE, '--out', dir], {
        ...baseEnv(),
        DATABASE_URL: adminUrl,
        ROTOR_CUSTODIAN: 'pkcs11',
        ROTOR_PKCS11_MODULE: hsm.modulePath,
        ROTOR_PKCS11_TOKEN_LABEL: hsm.label,
        ROTOR_PKCS11_PIN: hsm.pin,
        SOFTHSM2_CONF: hsm.confPath,
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).not.toContain(hsm.pin!);
      const outputs = await readOutputs(dir);
      const { newKeyId } = await expectOutputsVerify(outputs, 'hsm');
      expectCompletedSummary(outputs.summary, newKeyId);
      expect(outputs.summary.keys.custodian).toBe('pkcs11');
      const name = /^database (rotor_demo_[0-9a-f]{10}) \(dropped\)$/.exec(
        outputs.summary.environment.database,
      )?.[1];
      expect(name, outputs.summary.environment.database).toBeDefined();
      const admin = await connect(adminUrl, 1);
      try {
        const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        expect(rowCount).toBe(0);
      } finally {
        await admin.end();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
