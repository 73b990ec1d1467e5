/**
 * The `rotor` command line. stdout carries data only; messages go to stderr.
 * Exit codes: 0 success, 1 the operation ran and said no, 2 bad usage or unreadable input,
 * 3 the environment lacks something (a server, a binary, a library).
 */
import { Command, CommanderError } from 'commander';
import { loadConfig, type RotorConfig } from '../config';
import { RotorError } from '../errors';
import { cliLogger, isCliLogJson, setCliLogJson } from '../log';
import { registerAnchorCommands } from './commands/anchor';
import { registerAuditCommands } from './commands/audit';
import { registerCrlCommands } from './commands/crl';
import { registerDbCommands } from './commands/db';
import { registerDeliveryCommands } from './commands/delivery';
import { registerDemoCommands } from './commands/demo';
import { registerKeyCommands } from './commands/key';
import { registerManifestCommands } from './commands/manifest';
import { registerManifestsCommands } from './commands/manifests';
import { registerRevocationCommands } from './commands/revocation';
import { registerRotateCommands } from './commands/rotate';
import { registerScheduleCommands } from './commands/schedule';
import { registerServeCommands } from './commands/serve';
import { registerTemporalCommands } from './commands/temporal';
import { registerVerifierCommands } from './commands/verifier';

/**
 * The CLI is an entry point: it reads the environment once (`loadConfig`, src/config.ts; each
 * section parsed when a command first uses it) and hands each command group the configuration.
 */
export function buildProgram(config: RotorConfig = loadConfig()): Command {
  const program = new Command('rotor')
    .description('Staged, zero-downtime rotation of agent-manifest Ed25519 signing keys')
    .version('0.1.0')
    .option('--log-json', 'log lines as JSON (pino) on stderr instead of human text; stdout is unchanged')
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', (root) => setCliLogJson(Boolean(root.opts().logJson)));
  registerDbCommands(program, config);
  registerKeyCommands(program, config);
  registerAnchorCommands(program, config);
  registerRotateCommands(program, config);
  registerScheduleCommands(program, config);
  registerManifestCommands(program);
  registerManifestsCommands(program, config);
  registerAuditCommands(program, config);
  registerRevocationCommands(program);
  registerCrlCommands(program, config);
  registerServeCommands(program, config);
  registerDeliveryCommands(program, config);
  registerTemporalCommands(program, config);
  registerVerifierCommands(program, config);
  registerDemoCommands(program, config);
  // Commander applies exitOverride to subcommands created after this call.
  for (const cmd of allCommands(program)) cmd.exitOverride();
  return program;
}

function* allCommands(cmd: Command): Generator<Command> {
  for (const sub of cmd.commands) {
    yield sub;
    yield* allCommands(sub);
  }
}

export async function runCli(argv: string[]): Promise<number> {
  const config = loadConfig();
  const program = buildProgram(config);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are exits with code 0; anything else commander raises is bad usage.
      if (err.exitCode === 0) return 0;
      return 2;
    }
    if (err instanceof RotorError) {
      if (isCliLogJson()) cliLogger('info').error({ code: err.code, exitCode: err.exitCode }, err.message);
      else process.stderr.write(`rotor: ${err.message}\n`);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`rotor: unexpected error: ${message}\n`);
    if (config.debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

// `node dist/cli/main.js` or `tsx src/cli/main.ts`; bin/rotor.mjs and bin/rotor-dev.mjs call runCli.
const isMain = process.argv[1] !== undefined && /cli[/\\]main\.[jt]s$/.test(process.argv[1]);
if (isMain) {
  const code = await runCli(process.argv.slice(2));
  // Let pending stdout drain before exiting.
  process.exitCode = code;
}
