/**
 * `rotor demo` (`npm run demo`): the main job on an embedded default. See src/demo/run-demo.ts.
 * Progress and the summary go to stderr; the evidence goes to --out.
 */
import type { Command } from 'commander';
import type { RotorConfig } from '../../config';
import { DEFAULT_TIMELINE_SECONDS, MAX_TIMELINE_SECONDS, MIN_TIMELINE_SECONDS } from '../../demo/timeline';
import { UsageError } from '../../errors';

const MAX_COUNT = 1_000_000;

export function registerDemoCommands(program: Command, config: RotorConfig): void {
  program
    .command('demo')
    .description(
      'run a full scheduled rotation on throwaway infrastructure (Temporal dev server, embedded Postgres ' +
        'unless DATABASE_URL is set, software custodian unless ROTOR_CUSTODIAN=pkcs11), then verify its outputs',
    )
    .option('--count <n>', 'manifests to seed and rotate', '1000')
    .option(
      '--out <dir>',
      'where manifests.jsonl, trust-anchor.json, crl.jsonl and summary.json go',
      './demo-out',
    )
    .option(
      '--timeline-seconds <n>',
      `the runbook's hour compressed to this many seconds (${MIN_TIMELINE_SECONDS} to ${MAX_TIMELINE_SECONDS})`,
      String(DEFAULT_TIMELINE_SECONDS),
    )
    .action(async (opts: { count: string; out: string; timelineSeconds: string }) => {
      const count = wholeNumber(opts.count, '--count', 1, MAX_COUNT);
      const timelineSeconds = wholeNumber(
        opts.timelineSeconds,
        '--timeline-seconds',
        MIN_TIMELINE_SECONDS,
        MAX_TIMELINE_SECONDS,
      );
      if (!opts.out.trim()) throw new UsageError('--out must name a folder');
      const controller = new AbortController();
      const onSignal = () => {
        if (controller.signal.aborted) {
          // A second Ctrl-C: the 'exit' listeners of the dev server and embedded Postgres still stop them.
          process.stderr.write('rotor demo: stopping at once\n');
          process.exit(130);
        }
        process.stderr.write(
          '\nrotor demo: Ctrl-C: stopping what the demo started (Ctrl-C again to quit at once)\n',
        );
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      // Loaded on use: the demo pulls in the Temporal worker (its native bridge and webpack), which
      // would otherwise slow every other command's start, `rotor --help` included.
      const { DemoInterrupted, runDemo } = await import('../../demo/run-demo');
      try {
        await runDemo({
          count,
          timelineSeconds,
          outDir: opts.out,
          config,
          out: process.stderr,
          signal: controller.signal,
        });
        process.stderr.write('rotor demo: OK\n');
      } catch (err) {
        // Whatever failed while Ctrl-C was being handled, the run was interrupted.
        if (controller.signal.aborted && !(err instanceof DemoInterrupted)) throw new DemoInterrupted();
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

function wholeNumber(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}, got '${text}'`);
  }
  return n;
}
