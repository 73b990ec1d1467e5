/**
 * Issue 16, "One configuration": src/config.ts is the only module of src/ that reads the
 * environment, every variable it reads is in its `ENV_VARIABLES` list, and docs/CONFIGURATION.md's
 * table is that list. A bad value is one line naming the variable.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENV_VARIABLES, loadConfig } from '../../src/config';
import { CONFIGURATION_DOC, documentedTable, renderConfigurationTable } from '../helpers/configuration-doc';
import { sourceFiles } from '../helpers/layering';
import { type EnvUseKind, processEnvUses } from '../helpers/process-env';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

/**
 * The only uses of `process.env` src/ may make, each with why it cannot go through src/config.ts.
 * Key: file (relative to the repository) and kind; value: how many such uses, and why.
 */
const ALLOWED: Record<string, { kind: EnvUseKind; count: number; why: string }> = {
  'src/config.ts': {
    kind: 'value',
    count: 1,
    why: "loadConfig's default argument: the one read of the environment",
  },
  'src/embedded/postgres.ts': {
    kind: 'spread',
    count: 1,
    why: "the server's environment: this process's passed on, with LC_ALL=C added",
  },
  'src/hsm/softhsm-token.ts': {
    kind: 'spread',
    count: 1,
    why: "softhsm2-util's environment: this process's passed on, with SOFTHSM2_CONF added",
  },
};

function uses(file: string) {
  return processEnvUses(file, readFileSync(file, 'utf8')).map((u) => ({
    file: relative(ROOT, file),
    ...u,
  }));
}

describe('one configuration (src/config.ts)', () => {
  it('no module of src/ but config.ts reads or writes process.env (bar the passed-on environments listed here)', () => {
    const all = sourceFiles(SRC).flatMap(uses);
    const unexpected = all.filter((u) => ALLOWED[u.file]?.kind !== u.kind);
    expect(
      unexpected.map((u) => `${u.file}:${u.line} ${u.kind}: ${u.text}`),
      'read it in src/config.ts and pass the value down',
    ).toEqual([]);
    for (const [file, allowed] of Object.entries(ALLOWED)) {
      expect(all.filter((u) => u.file === file).length, `${file}: ${allowed.why}`).toBe(allowed.count);
    }
  });

  it('the checker sees every way of reaching the environment', () => {
    const kinds = (code: string) => processEnvUses('sample.ts', code).map((u) => u.kind);
    expect(kinds('const a = process.env.ROTOR_X;')).toEqual(['read']);
    expect(kinds("const a = process.env['ROTOR_X'];")).toEqual(['read']);
    expect(kinds("const a = process['env'].ROTOR_X;")).toEqual(['read']);
    expect(kinds('const a = globalThis.process.env.ROTOR_X;')).toEqual(['read']);
    expect(kinds("process.env.SOFTHSM2_CONF = '/x';")).toEqual(['write']);
    expect(kinds('delete process.env.X;')).toEqual(['write']);
    expect(kinds('Object.assign(process.env, { X: "1" });')).toEqual(['write']);
    expect(kinds('spawn("x", [], { env: { ...process.env, A: "1" } });')).toEqual(['spread']);
    expect(kinds('function f(env = process.env) { return env.X; }')).toEqual(['value']);
    expect(kinds('const { env } = process;')).toEqual(['value']);
    expect(kinds("import { env } from 'node:process';")).toEqual(['value']);
    expect(kinds('const e = environment.X; const p = process.argv;')).toEqual([]);
  });

  it('every variable config.ts reads is listed once, and every listed one is read', () => {
    const names: string[] = ENV_VARIABLES.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    const readByRotor: string[] = ENV_VARIABLES.filter((v) => !('readBy' in v)).map((v) => v.name);
    const text = readFileSync(join(SRC, 'config.ts'), 'utf8');
    const read = new Set([...text.matchAll(/\bget\(\w+, '([A-Z0-9_]+)'\)/g)].map((m) => m[1]!));
    // Read through the helpers that take a name: readable(), port().
    for (const m of text.matchAll(/\b(?:readable|port)\(\w+, '([A-Z0-9_]+)'/g)) read.add(m[1]!);
    expect([...read].filter((n) => !names.includes(n))).toEqual([]);
    expect(readByRotor.filter((n) => !read.has(n))).toEqual([]);
    // A variable a library reads is one rotor never touches.
    expect(names.filter((n) => !readByRotor.includes(n) && read.has(n))).toEqual([]);
  });

  it("docs/CONFIGURATION.md's table is ENV_VARIABLES (npx tsx test/helpers/configuration-doc.ts --write)", () => {
    const doc = readFileSync(CONFIGURATION_DOC, 'utf8');
    expect(documentedTable(doc)).toBe(renderConfigurationTable());
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain('(docs/CONFIGURATION.md)');
  });

  it('is parsed once per section, frozen, and a bad value is one line naming the variable', () => {
    const env: Record<string, string> = { ROTOR_HTTP_PORT: '8081', ROTOR_CUSTODIAN: 'software' };
    const config = loadConfig(env);
    expect(Object.isFrozen(config)).toBe(true);
    expect(config.serve).toBe(config.serve);
    env.ROTOR_HTTP_PORT = '9999';
    expect(config.serve.port).toBe(8081);
    expect(config.databaseUrlSet).toBe(false);
    // A bad value in one section does not stop a process that never uses it.
    const bad = loadConfig({ ROTOR_HTTP_PORT: 'http', ROTOR_SIGN_THREADS: '65', ROTOR_CUSTODIAN: 'vault' });
    expect(bad.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/postgres');
    expect(() => bad.serve).toThrow(/^ROTOR_HTTP_PORT must be a port number \(0 to 65535\), got 'http'$/);
    expect(() => bad.worker).toThrow(/^ROTOR_SIGN_THREADS must be an integer from 0 to 64, got '65'$/);
    expect(() => bad.custody.kind).toThrow(/^ROTOR_CUSTODIAN must be one of pkcs11, software, got 'vault'$/);
    expect(() => loadConfig({ ROTOR_ANCHOR_MAX_AGE: '-1' }).anchorMaxAgeSeconds).toThrow(
      /^ROTOR_ANCHOR_MAX_AGE must be a positive integer, got '-1'$/,
    );
    // The PIN is never in a message.
    expect(() => loadConfig({ ROTOR_PKCS11_PIN: 'secret-pin' }).custody.pkcs11).toThrow(
      /^ROTOR_PKCS11_TOKEN_LABEL is not set/,
    );
    expect(loadConfig({ USER: '', LOGNAME: 'ops' }).operator).toBe('ops');
  });
});
