import type { Command } from 'commander';
import type { RotorConfig } from '../../config';
import { withPool } from '../../store/db';
import { migrate } from '../../store/migrate';

export function registerDbCommands(program: Command, config: RotorConfig): void {
  const db = program.command('db').description('the Postgres schema');
  db.command('migrate')
    .description('apply pending migrations to DATABASE_URL')
    .action(async () => {
      await withPool(config.databaseUrl, async (pool) => {
        const result = await migrate(pool);
        for (const name of result.applied) process.stderr.write(`applied ${name}\n`);
        // The least-privilege login roles (migration 085) get the operator's passwords, if given.
        // The password travels as a bound parameter into a session setting that format(%L) quotes;
        // it is never part of the SQL text, a log line or an error message.
        const client = await pool.connect();
        try {
          for (const [role, variable] of [
            ['rotor_worker', 'ROTOR_WORKER_DB_PASSWORD'],
            ['rotor_serve', 'ROTOR_SERVE_DB_PASSWORD'],
          ] as const) {
            const password = config.dbPasswords[role];
            if (!password) continue;
            await client.query("SELECT set_config('rotor.new_password', $1, false)", [password]);
            await client.query(
              `DO $do$ BEGIN EXECUTE format('ALTER ROLE ${role} PASSWORD %L', current_setting('rotor.new_password')); END $do$`,
            );
            process.stderr.write(`set the password of ${role} from ${variable}\n`);
          }
        } finally {
          // The session ends with the command; clearing the setting first is belt and braces.
          await client.query("SELECT set_config('rotor.new_password', '', false)").catch(() => undefined);
          client.release();
        }
        process.stdout.write(
          `${JSON.stringify({ applied: result.applied, already_applied: result.alreadyApplied })}\n`,
        );
      });
    });
}
