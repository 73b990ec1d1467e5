/**
 * A Temporal server (Postgres persistence, production shape) of this test file's own, to kill and
 * start again: its databases are copies of the run's schema template, dropped on stop.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config';
import { connect } from '../../src/store/db';
import { cloneTemporalDatabases, startTemporalServer, type TemporalServer } from '../../src/temporal/server';

export async function startOwnTemporalServer(): Promise<TemporalServer> {
  const template = inject('temporalSchemaTemplate');
  if (!template) throw new Error('a Temporal server of its own runs only in the temporal-postgres project');
  const adminUrl = inject('adminDatabaseUrl');
  const prefix = `rotor_test_${inject('runId')}_${randomBytes(4).toString('hex')}`;
  const databases = { serverUrl: adminUrl, database: `${prefix}_t`, visibilityDatabase: `${prefix}_v` };
  await cloneTemporalDatabases(template, databases);
  const server = await startTemporalServer({
    tools: loadConfig().temporalTools,
    databases,
    createSchema: false,
  });
  const stop = server.stop;
  server.stop = async () => {
    await stop();
    const a = await connect(adminUrl, 1);
    try {
      await a.query(`DROP DATABASE IF EXISTS ${databases.database} WITH (FORCE)`);
      await a.query(`DROP DATABASE IF EXISTS ${databases.visibilityDatabase} WITH (FORCE)`);
    } finally {
      await a.end();
    }
  };
  return server;
}
