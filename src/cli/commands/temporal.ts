import type { Command } from 'commander';
import { ensureTemporalCli } from '../../temporal/cli-binary';
import { startDevServer } from '../../temporal/dev-server';

export function registerTemporalCommands(program: Command): void {
  const temporal = program.command('temporal').description('the Temporal CLI and its dev server');
  temporal
    .command('ensure-cli')
    .description('find the temporal CLI ($TEMPORAL_CLI, PATH, cache) or build it with Go; prints its path')
    .action(async () => {
      const cli = await ensureTemporalCli((line) => process.stderr.write(`${line}\n`));
      process.stdout.write(`${cli.path}\n`);
    });
  temporal
    .command('dev-server')
    .description('run a headless Temporal dev server on a free port until interrupted')
    .option('--namespace <ns>', 'namespace', 'default')
    .action(async (opts: { namespace: string }) => {
      const server = await startDevServer({
        namespace: opts.namespace,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`${server.address}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.stop();
    });
}
