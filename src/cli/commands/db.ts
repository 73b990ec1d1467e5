import type { Command } from 'commander';
import { withPool } from '../../store/db';
import { migrate } from '../../store/migrate';

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the Postgres schema');
  db.command('migrate')
    .description('apply pending migrations to DATABASE_URL')
    .action(async () => {
      await withPool(async (pool) => {
        const result = await migrate(pool);
        for (const name of result.applied) process.stderr.write(`applied ${name}\n`);
        process.stdout.write(
          `${JSON.stringify({ applied: result.applied, already_applied: result.alreadyApplied })}\n`,
        );
      });
    });
}
