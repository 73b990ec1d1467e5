import type { Command } from 'commander';
import { databaseUrl } from '../../config';
import { connect } from '../../store/db';
import { migrate } from '../../store/migrate';

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the Postgres schema');
  db.command('migrate')
    .description('apply pending migrations to DATABASE_URL')
    .action(async () => {
      const pool = await connect(databaseUrl());
      try {
        const result = await migrate(pool);
        for (const name of result.applied) process.stderr.write(`applied ${name}\n`);
        process.stdout.write(
          `${JSON.stringify({ applied: result.applied, already_applied: result.alreadyApplied })}\n`,
        );
      } finally {
        await pool.end();
      }
    });
}
