/**
 * One run of the suite: one Temporal dev server, one migrated template database (each test file
 * clones its own database from it), one SoftHSM2 token. All torn down at the end.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../src/config';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailability } from '../src/hsm/softhsm-token';
import { connect } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { startDevServer } from '../src/temporal/dev-server';
import { cloneTemporalDatabases, createTemporalSchema, startTemporalServer } from '../src/temporal/server';
import { databaseUrlFor, dropRunDatabases } from './helpers/db-admin';
import { MARK_VARIABLE, marked, settled } from './helpers/processes';

export interface SoftHsmContext {
  available: boolean;
  reason?: string;
  confPath?: string;
  label?: string;
  pin?: string;
  modulePath?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    adminDatabaseUrl: string;
    templateDatabase: string;
    runId: string;
    softhsm: SoftHsmContext;
    /** 'dev-server' (the CLI's, SQLite) or 'postgres' (the Temporal server on Postgres persistence). */
    temporalKind: 'dev-server' | 'postgres';
    /**
     * Under the production-shape project: Temporal's two databases with their schema made once per
     * run, for test files that clone them to run a Temporal server of their own (to kill it).
     */
    temporalSchemaTemplate: { database: string; visibilityDatabase: string } | null;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runId = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const config = loadConfig();
  const adminUrl = config.databaseUrl;
  // Every process started from here on (test workers, and whatever they start: servers, CLIs,
  // demos, Postgres) inherits this mark, so the teardown can find any that is still alive.
  const mark = `run-${runId}`;
  process.env[MARK_VARIABLE] = mark;
  const cleanups: Array<() => Promise<void> | void> = [];
  const teardown = async () => {
    for (const fn of cleanups.reverse()) await fn();
    await failOnLeftovers(mark);
  };
  try {
    // Postgres: a migrated template for this run.
    const admin = await connect(adminUrl, 2);
    cleanups.push(async () => {
      await dropRunDatabases(admin, runId);
      await admin.end();
    });
    const template = `rotor_test_${runId}_template`;
    await admin.query(`CREATE DATABASE ${template}`);
    const templatePool = await connect(databaseUrlFor(adminUrl, template), 1);
    await migrate(templatePool);
    await templatePool.end();

    // SoftHSM2: one token for the run; SOFTHSM2_CONF is inherited by the test processes.
    const availability = await softHsmAvailability();
    let softhsm: SoftHsmContext;
    if (availability.available) {
      // One token for every project of the run: test processes inherit one SOFTHSM2_CONF (the
      // last one set here), so a second token would be invisible to the other project's files.
      const shared = globalThis as { rotorTestToken?: { token: Promise<SoftHsmToken>; users: number } };
      shared.rotorTestToken ??= { token: createSoftHsmToken({ label: `rotor-test-${runId}` }), users: 0 };
      const holder = shared.rotorTestToken;
      holder.users++;
      const token = await holder.token;
      cleanups.push(async () => {
        if (--holder.users === 0) {
          shared.rotorTestToken = undefined;
          await token.remove();
        }
      });
      process.env.SOFTHSM2_CONF = token.confPath;
      softhsm = {
        available: true,
        confPath: token.confPath,
        label: token.label,
        pin: token.pin,
        modulePath: token.modulePath,
      };
    } else if (process.env.CI === 'true') {
      throw new Error(`SoftHSM2 is required under CI=true: ${availability.reason}`);
    } else {
      softhsm = { available: false, reason: availability.reason };
      process.stderr.write(
        `\n[rotor tests] ${availability.reason}\n[rotor tests] skipping the suites that need an HSM (their names say "SoftHSM")\n\n`,
      );
    }

    // Temporal: one server for the run. The `temporal-postgres` project (vitest.config.ts) runs
    // its files against the Temporal server itself on Postgres persistence, as compose does.
    const log = (line: string) => process.stderr.write(`[rotor tests] ${line}\n`);
    let server: { address: string; stop(): Promise<void> };
    let temporalSchemaTemplate: { database: string; visibilityDatabase: string } | null = null;
    if (project.name === 'temporal-postgres') {
      // The schema once, with Temporal's own SQL tool; the run's server and each test file's own
      // server get copies (CREATE DATABASE … TEMPLATE), which takes a moment, not the tool's seconds.
      temporalSchemaTemplate = {
        database: `rotor_test_${runId}_tmpl_temporal`,
        visibilityDatabase: `rotor_test_${runId}_tmpl_temporal_vis`,
      };
      await createTemporalSchema(
        { serverUrl: adminUrl, ...temporalSchemaTemplate },
        { tools: config.temporalTools, log },
      );
      const databases = {
        serverUrl: adminUrl,
        database: `rotor_test_${runId}_temporal`,
        visibilityDatabase: `rotor_test_${runId}_temporal_vis`,
      };
      await cloneTemporalDatabases(temporalSchemaTemplate, databases);
      server = await startTemporalServer({
        tools: config.temporalTools,
        databases,
        createSchema: false,
        log,
      });
    } else {
      server = await startDevServer({ tools: config.temporalTools, log });
    }
    cleanups.push(() => server.stop());

    project.provide('temporalAddress', server.address);
    project.provide('adminDatabaseUrl', adminUrl);
    project.provide('templateDatabase', template);
    project.provide('runId', runId);
    project.provide('softhsm', softhsm);
    project.provide('temporalKind', project.name === 'temporal-postgres' ? 'postgres' : 'dev-server');
    project.provide('temporalSchemaTemplate', temporalSchemaTemplate);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

/**
 * Fails the run when a process the run started is still alive once everything was stopped: a
 * test or a helper that leaks a server, a worker process or a CLI. The leftovers are then killed,
 * so the machine is clean either way; the error names them.
 */
async function failOnLeftovers(mark: string): Promise<void> {
  // The test workers themselves carry the mark; they are on their way out when this runs.
  const isTestWorker = (command: string) => /node_modules[/\\](vitest|tinypool)[/\\]/.test(command);
  const left = (await settled(() => marked(mark).filter((p) => !isTestWorker(p.command)), 10_000)).filter(
    (p) => !isTestWorker(p.command),
  );
  if (left.length === 0) return;
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(
    `the test run left ${left.length} process(es) running (now killed): ${left.map((p) => `${p.pid} ${p.command.slice(0, 160)}`).join('; ')}`,
  );
}
