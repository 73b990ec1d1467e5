/**
 * The structured log (src/log.ts): a real rotation on the run's Temporal server, its worker's
 * Runtime logger being rotor's pino logger, can be followed by workflow id through the activity
 * and workflow lines; `rotor serve`'s access log has one line per request with its request id;
 * secret-named fields are redacted wherever they sit; `--log-json` turns the CLI's lines to JSON.
 */
import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLevel } from '../src/config';
import { createHttpService, type HttpService } from '../src/http/service';
import { createLogger, REDACTED, temporalLogger } from '../src/log';
import { rotationWorkflowId } from '../src/workflows/rotation-api';
import { CHECKIN_TOKEN, createRotationEnv, type RotationEnv } from './helpers/rotation-env';

type Line = Record<string, unknown>;

/** A pino destination that keeps every line, parsed. */
function capture(): { lines: Line[]; raw: string[]; stream: Writable } {
  const lines: Line[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) {
        raw.push(text);
        lines.push(JSON.parse(text) as Line);
      }
      done();
    },
  });
  return { lines, raw, stream };
}

const worker = capture();
// Before anything touches the Runtime (test/helpers/temporal.ts then finds it installed).
Runtime.install({ logger: temporalLogger(createLogger({ level: 'debug', destination: worker.stream })) });

describe('structured log', () => {
  it('redacts secret-named fields at any depth, and keeps the rest', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    log.info(
      {
        pin: '1234-pin',
        keyId: 'ab'.repeat(32),
        custody: { seed: 'seed-bytes', tokenLabel: 'rotor' },
        req: { headers: { authorization: 'Bearer hunter2' } },
        activity: { taskToken: 'task-token-value', attempt: 2 },
        db: { password: 'pg-password' },
      },
      'hello',
    );
    const [line] = out.lines;
    expect(line).toMatchObject({
      msg: 'hello',
      level: 'info',
      pin: REDACTED,
      keyId: 'ab'.repeat(32),
      custody: { seed: REDACTED, tokenLabel: 'rotor' },
      req: { headers: { authorization: REDACTED } },
      activity: { taskToken: REDACTED, attempt: 2 },
      db: { password: REDACTED },
    });
    expect(out.raw.join('\n')).not.toMatch(/1234-pin|seed-bytes|hunter2|task-token-value|pg-password/);
  });

  it('takes its level from ROTOR_LOG_LEVEL, refusing a bad one by name', () => {
    expect(logLevel({})).toBe('info');
    expect(logLevel({ ROTOR_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(() => logLevel({ ROTOR_LOG_LEVEL: 'loud' })).toThrow(/^ROTOR_LOG_LEVEL must be one of .*'loud'/);
    const out = capture();
    createLogger({ level: 'warn', destination: out.stream }).info('dropped');
    expect(out.lines).toHaveLength(0);
  });

  describe('a rotation, followed by its workflow id (Temporal + Postgres, software custody)', () => {
    let env: RotationEnv;
    let workflowId: string;
    beforeAll(async () => {
      env = await createRotationEnv('software');
      const signer = await env.initIdentity('logged');
      await env.seed('logged', signer, 20);
      const handle = await env.start('logged', 'compromise');
      workflowId = handle.workflowId;
      const result = await env.finish(handle);
      expect(result.phase, result.outcome).toBe('completed');
    });
    afterAll(async () => {
      await env?.close();
    });

    it('has activity lines with activity id and attempt, and workflow lines, under one workflow id', () => {
      expect(workflowId).toBe(rotationWorkflowId('logged'));
      const mine = worker.lines.filter((l) => l.workflowId === workflowId);
      const done = mine.filter((l) => typeof l.activity === 'string' && /done$/.test(String(l.msg)));
      const steps = new Set(done.map((l) => l.activity));
      for (const step of ['preflight', 'generateKey', 'switchKeys', 'revokeChunk', 'decommissionKey'])
        expect(steps, step).toContain(step);
      for (const line of done) {
        expect(line).toMatchObject({
          level: 'info',
          attempt: expect.any(Number),
          activityId: expect.any(String),
        });
        expect(line.taskToken).toBe(REDACTED);
      }
      // The SDK's workflow lines (replay-safe, through sinks) carry the same id and the run id.
      const workflowLines = mine.filter(
        (l) => l.msg === 'Workflow started' || l.msg === 'Workflow completed',
      );
      expect(workflowLines.length).toBeGreaterThanOrEqual(2);
      expect(workflowLines[0]).toMatchObject({ runId: expect.any(String) });
    });

    it('never writes the check-in token or a private value', () => {
      const all = worker.raw.join('\n');
      expect(all).toContain(workflowId);
      expect(all).not.toContain(CHECKIN_TOKEN);
      expect(all).not.toMatch(/PRIVATE KEY|"seed":"[^[]/);
    });

    describe('the access log of rotor serve', () => {
      let http: HttpService;
      let base: string;
      const access = capture();
      beforeAll(async () => {
        http = createHttpService({
          pool: env.db.pool,
          anchorMaxAgeSeconds: 1,
          checkInToken: 'sekret-check-in-token',
          identity: 'logged',
          logger: createLogger({ destination: access.stream, base: { component: 'serve' } }),
        });
        const { port } = await http.listen(0, '127.0.0.1');
        base = `http://127.0.0.1:${port}`;
      });
      afterAll(async () => {
        await http?.close();
      });

      it('writes one line per request: method, route, status, duration and request id', async () => {
        const anchor = await fetch(`${base}/.well-known/agent-manifest/trust-anchor`, {
          headers: { 'X-Request-Id': 'req-anchor-1' },
        });
        await anchor.arrayBuffer();
        expect(anchor.headers.get('x-request-id')).toBe('req-anchor-1');
        const refused = await fetch(`${base}/v1/verifiers/sidecar-x/check-in`, {
          method: 'POST',
          headers: { Authorization: 'Bearer sekret-but-wrong', 'content-type': 'application/json' },
          body: JSON.stringify({ anchor_version: 1 }),
        });
        await refused.arrayBuffer();
        const generated = refused.headers.get('x-request-id');
        expect(generated).toMatch(/^[0-9a-f-]{36}$/);
        await new Promise((r) => setTimeout(r, 50)); // 'close' fires after the response ends
        const lines = access.lines.filter((l) => l.msg === 'request');
        expect(lines).toEqual([
          expect.objectContaining({
            component: 'serve',
            requestId: 'req-anchor-1',
            method: 'GET',
            route: '/.well-known/agent-manifest/trust-anchor',
            status: 200,
            durationMs: expect.any(Number),
          }),
          expect.objectContaining({
            requestId: generated,
            method: 'POST',
            route: '/v1/verifiers/{id}/check-in',
            status: 401,
          }),
        ]);
        expect(access.raw.join('\n')).not.toMatch(/sekret/);
      });
    });
  });

  it('--log-json makes the CLI write its error as one JSON line', async () => {
    const rotor = fileURLToPath(new URL('../bin/rotor-dev.mjs', import.meta.url));
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [rotor, '--log-json', 'manifest', 'verify', '/nonexistent/manifest.json', '--public-key', 'x'],
        (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
      );
    });
    expect(code).toBe(2);
    const line = JSON.parse(stderr.trim().split('\n').at(-1)!) as Line;
    expect(line).toMatchObject({ level: 'error', service: 'rotor', exitCode: 2, msg: expect.any(String) });
  });
});
