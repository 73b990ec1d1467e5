import type { Command } from 'commander';
import type { RotorConfig } from '../../config';
import { ensureTemporalCli } from '../../temporal/cli-binary';
import { startDevServer } from '../../temporal/dev-server';
import { ensureTemporalServer } from '../../temporal/server-binary';

export function registerTemporalCommands(program: Command, config: RotorConfig): void {
  const temporal = program.command('temporal').description('the Temporal CLI and its dev server');
  temporal
    .command('ensure-cli')
    .description('find the temporal CLI ($TEMPORAL_CLI, PATH, cache) or build it with Go; prints its path')
    .action(async () => {
      const cli = await ensureTemporalCli(config.temporalTools, (line) => process.stderr.write(`${line}\n`));
      process.stdout.write(`${cli.path}\n`);
    });
  temporal
    .command('ensure-server')
    .description(
      'find the Temporal server and its SQL tool ($TEMPORAL_SERVER_DIR, cache) or build them with Go; prints the server path',
    )
    .action(async () => {
      const found = await ensureTemporalServer(config.temporalTools, (line) =>
        process.stderr.write(`${line}\n`),
      );
      process.stdout.write(`${found.server}\n`);
    });
  temporal
    .command('dev-server')
    .description('run a headless Temporal dev server on a free port until interrupted')
    .option('--namespace <ns>', 'namespace', 'default')
    .action(async (opts: { namespace: string }) => {
      const server = await startDevServer({
        tools: config.temporalTools,
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
