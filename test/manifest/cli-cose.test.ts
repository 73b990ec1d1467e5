/**
 * `rotor manifest sign|verify|inspect|canonicalize|pre-image` on v0.2 COSE envelopes. One case runs
 * the real binary as a user does; the others call the same CLI entry point in this process
 * (`runCli`, stdout captured), which spares a tsx start per command on a loaded machine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main';

const ROTOR = join(import.meta.dirname, '../../bin/rotor-dev.mjs');
const VECTORS = join(import.meta.dirname, '../fixtures/vectors');
const sdk = JSON.parse(readFileSync(join(VECTORS, 'reference-sdk-cose-shared.json'), 'utf8')) as {
  key: { seed_b64url: string; public_b64url: string; key_id: string };
  vectors: { manifest_json: string; payload_hex: string; envelope_hex: string }[];
};
const dir = mkdtempSync(join(tmpdir(), 'rotor-cose-cli-'));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

function spawnRotor(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [ROTOR, ...args], { input, maxBuffer: 64 * 1024 * 1024 });
  return {
    code: r.status,
    stdout: r.stdout.toString('utf8'),
    stdoutBytes: r.stdout,
    stderr: r.stderr.toString('utf8'),
  };
}

/** The CLI in this process; stdin input goes through a temporary file named `-` is not supported here. */
async function rotor(args: string[]) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  const capture = (sink: Buffer[]) => (chunk: string | Uint8Array) => {
    sink.push(Buffer.from(chunk));
    return true;
  };
  process.stdout.write = capture(out) as typeof process.stdout.write;
  process.stderr.write = capture(err) as typeof process.stderr.write;
  const before = process.exitCode;
  let code: number;
  try {
    process.exitCode = undefined;
    code = await runCli(args);
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
    process.exitCode = before;
  }
  const stdoutBytes = Buffer.concat(out);
  return {
    code,
    stdout: stdoutBytes.toString('utf8'),
    stdoutBytes,
    stderr: Buffer.concat(err).toString('utf8'),
  };
}

const key = file('sdk.key', `${sdk.key.seed_b64url}\n`);
const pub = sdk.key.public_b64url;

describe('rotor manifest with COSE envelopes (CLI)', () => {
  it('the rotor binary: sign --hex prints exactly the SDK envelope_hex; verify says VALID', () => {
    const v = sdk.vectors[1]!;
    const r = spawnRotor(['manifest', 'sign', file('bin.json', v.manifest_json), '--key', key, '--hex']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${v.envelope_hex}\n`);
    const ok = spawnRotor(['manifest', 'verify', '-', '--hex', '--public-key', pub], r.stdout);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ result: 'VALID', version: '0.2' });
  });

  it('sign --hex prints exactly the SDK envelope_hex for every shared manifest; binary -o writes its bytes', async () => {
    for (const [i, v] of sdk.vectors.entries()) {
      const m = file(`m${i}.json`, v.manifest_json);
      const r = await rotor(['manifest', 'sign', m, '--key', key, '--hex']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${v.envelope_hex}\n`);
    }
    const out = join(dir, 'm0.cbor');
    expect((await rotor(['manifest', 'sign', join(dir, 'm0.json'), '--key', key, '-o', out])).code).toBe(0);
    expect(readFileSync(out).toString('hex')).toBe(sdk.vectors[0]!.envelope_hex);
    // Members that attach after signing are named on stderr, never silently dropped.
    const withExtras = sdk.vectors.findIndex((v) => v.manifest_json.includes('transparency_log_entry'));
    const r = await rotor(['manifest', 'sign', join(dir, `m${withExtras}.json`), '--key', key, '--hex']);
    expect(r.stderr).toMatch(/transparency_log_entry is not part of the v0.2 payload/);
  });

  it('verify reads binary and hex envelopes: VALID exit 0, a flipped byte INVALID exit 1', async () => {
    const v = sdk.vectors[0]!;
    const bin = file('v0.cbor', Buffer.from(v.envelope_hex, 'hex'));
    const ok = await rotor(['manifest', 'verify', bin, '--public-key', pub]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ result: 'VALID', key_id: sdk.key.key_id, version: '0.2' });
    const hexOk = await rotor([
      'manifest',
      'verify',
      file('v0.hex', `${v.envelope_hex}\n`),
      '--hex',
      '--public-key',
      pub,
    ]);
    expect(hexOk.code).toBe(0);
    const bad = Buffer.from(v.envelope_hex, 'hex');
    bad[bad.length - 1]! ^= 1;
    const r = await rotor(['manifest', 'verify', file('bad.cbor', bad), '--public-key', pub]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'INVALID', upstream_result: 'MISMATCH' });
  });

  it('inspect prints headers and the payload as JSON; canonicalize prints the payload; pre-image the Sig_structure', async () => {
    const v = sdk.vectors[2]!;
    const bin = file('v2.cbor', Buffer.from(v.envelope_hex, 'hex'));
    const r = await rotor(['manifest', 'inspect', bin]);
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout);
    expect(shown).toMatchObject({
      type: 'COSE_Sign1',
      tag: 18,
      key_id: sdk.key.key_id,
      protected: {
        '1': -19,
        '3': 'application/agent-manifest+json',
        '4': { bstr_hex: sdk.key.key_id },
        '16': 'application/agent-manifest+cose',
      },
      unprotected: {},
      problem: null,
    });
    expect(shown.payload.version).toBe('0.2');
    expect((await rotor(['manifest', 'inspect', file('v2.hex', v.envelope_hex), '--hex'])).stdout).toBe(
      r.stdout,
    );
    const c = await rotor(['manifest', 'canonicalize', bin]);
    expect(c.stdoutBytes.toString('hex')).toBe(v.payload_hex);
    expect((await rotor(['manifest', 'canonicalize', bin, '--hex'])).stdout).toBe(`${v.payload_hex}\n`);
    const p = await rotor(['manifest', 'pre-image', bin, '--hex']);
    expect(p.stdout.startsWith('846a5369676e617475726531')).toBe(true); // ["Signature1", ...
  });

  it('inspect names why an envelope would be refused; bad input is one line, exit 2', async () => {
    const untagged = JSON.parse(
      readFileSync(join(VECTORS, 'agent-manifest-upstream', 'AM-VEC-COSE-012.json'), 'utf8'),
    ).envelope_hex as string;
    const r = await rotor(['manifest', 'inspect', file('v12.hex', untagged), '--hex']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).problem).toMatch(/^INCOMPATIBLE_VERSION: .*payload version "0\.1"/);
    const bad = await rotor(['manifest', 'verify', file('bad.hex', 'd2zz'), '--hex', '--public-key', pub]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/bad\.hex: not hex: character "z" at offset 2/);
    const json = await rotor(['manifest', 'inspect', file('doc.json', sdk.vectors[0]!.manifest_json)]);
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/is a JSON document .* not a COSE envelope/);
  });

  it('refuses to sign a 0.1 payload envelope and names the manifest', async () => {
    const v12 = JSON.parse(
      readFileSync(join(VECTORS, 'agent-manifest-upstream', 'AM-VEC-COSE-012.json'), 'utf8'),
    ).envelope_hex as string;
    const r = await rotor(['manifest', 'sign', file('v12b.hex', v12), '--hex', '--key', key]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/manifest_id 018f4a3b-2c1d-7e5f-a8b9-0d1e2f3a4b5c: payload version "0\.1"/);
  });
});
