/**
 * `rotor audit list` and `rotor audit verify`: read the hash-chained audit log and check it.
 * verify names every edited, inserted or deleted entry and exits 1 when it finds any.
 */
import type { Command } from 'commander';
import { positiveInt } from '../../config';
import { fromPlain, stringifyJson } from '../../manifest';
import { listAudit, verifyAuditChain } from '../../store/audit';
import { withPool } from '../../store/db';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit log');

  audit
    .command('list')
    .description('print the latest audit entries as JSON lines, oldest first')
    .option('--subject <subject>', 'only entries about this subject (a key_id, a rotation id)')
    .option('--limit <n>', 'how many entries', '100')
    .action(async (opts: { subject?: string; limit: string }) => {
      const limit = positiveInt(opts.limit, '--limit', 100);
      await withPool(async (pool) => {
        for (const e of await listAudit(pool, { subject: opts.subject, limit })) {
          // stringifyJson keeps big integers in details exact (JSON.stringify cannot).
          const line = stringifyJson(
            fromPlain({
              id: e.id,
              recorded_at: e.recordedAt.toISOString(),
              actor: e.actor,
              action: e.action,
              subject: e.subject,
              details: e.details,
              hash: e.hash,
            }),
          );
          process.stdout.write(`${line}\n`);
        }
      });
    });

  audit
    .command('verify')
    .description('walk the whole chain and name every entry that was edited, inserted or deleted')
    .action(async () => {
      await withPool(async (pool) => {
        const result = await verifyAuditChain(pool);
        for (const p of result.problems) process.stderr.write(`rotor: audit entry ${p.id}: ${p.problem}\n`);
        process.stdout.write(`${JSON.stringify(result)}\n`);
        if (!result.ok) process.exitCode = 1;
      });
    });
}
