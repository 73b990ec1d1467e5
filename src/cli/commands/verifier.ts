import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { positiveInt, type RotorConfig } from '../../config';
import { errorMessage, UsageError } from '../../errors';
import { isVerifierId } from '../../http/ids';
import type { Verdict } from '../../manifest';
import { withPool } from '../../store/db';
import { gateVerifiers, registerVerifier, retireVerifier } from '../../store/verifiers';
import { table } from '../../text/table';
import {
  type ManifestInput,
  manifestFromLine,
  pinnedRoot,
  ReferenceVerifier,
} from '../../verifier/reference-verifier';
import { checkIdentity } from '../rotation-options';

interface RunOptions {
  id: string;
  baseUrl: string;
  intervalMs: string;
  identity?: string;
  manifests?: string;
  once?: boolean;
  root: string[];
  rootThreshold: string;
  rootVersion: string;
}

export function registerVerifierCommands(program: Command, config: RotorConfig): void {
  const verifier = program.command('verifier').description('a reference verifier, as a sidecar runs one');
  verifier
    .command('register <id>')
    .description(
      'register a verifier with a check-in credential of its own, bound to its id and identity; ' +
        'prints the credential once (stdout), stored only as a hash. Again for the same id: a new credential, the old one stops working',
    )
    .requiredOption('--identity <name>', 'the signing identity whose anchor this verifier holds')
    .action(async (id: string, opts: { identity: string }) => {
      if (!isVerifierId(id))
        throw new UsageError(`verifier id ${JSON.stringify(id.slice(0, 80))} is malformed`);
      const identity = checkIdentity(opts.identity);
      const reg = await withPool(config.databaseUrl, (pool) =>
        registerVerifier(pool, { verifierId: id, identity }),
      );
      process.stdout.write(`${reg.credential}\n`);
      process.stderr.write(
        `verifier ${id} registered for identity ${identity}; give it this credential as ROTOR_VERIFIER_CREDENTIAL (shown only now). ` +
          'It now counts in every adoption and acceptance gate of the identity until it adopts or is retired\n',
      );
    });
  verifier
    .command('retire <id>')
    .description('take a verifier out of the gates (a host gone for good); its credential stops working')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, opts: { reason: string }) => {
      const v = await withPool(config.databaseUrl, (pool) => retireVerifier(pool, id, opts.reason));
      process.stderr.write(`verifier ${v.verifierId} (${v.identity}) retired: ${opts.reason}\n`);
    });
  verifier
    .command('list')
    .description(
      "the verifiers a rotation's gates wait for: registered ones (quiet or not) and unregistered ones that check in",
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--liveness-seconds <n>', "how recent an unregistered verifier's check-in must be", '600')
    .action(async (opts: { identity: string; livenessSeconds: string }) => {
      const identity = checkIdentity(opts.identity);
      const withinSeconds = positiveInt(opts.livenessSeconds, '--liveness-seconds', 600);
      const rows = await withPool(config.databaseUrl, (pool) =>
        gateVerifiers(pool, { identity, withinSeconds }),
      );
      process.stdout.write(
        table([
          ['VERIFIER', 'REGISTERED', 'ANCHOR', 'LAST SEEN'],
          ...rows.map((v) => [
            v.verifierId,
            v.registeredAt ? 'yes' : 'no (shared token)',
            v.checkedIn ? String(v.anchorVersion) : '-',
            v.checkedIn ? v.lastSeenAt.toISOString() : 'never',
          ]),
        ]),
      );
    });
  verifier
    .command('run')
    .description(
      'fetch the trust anchor and CRL (honouring their cache lifetimes), verify manifests, check in; ' +
        'prints one JSON line per cycle. The check-in credential comes from ROTOR_VERIFIER_CREDENTIAL ' +
        '(rotor verifier register), or the shared ROTOR_CHECKIN_TOKEN for an unregistered verifier',
    )
    .requiredOption('--id <id>', 'this verifier’s id in the registry')
    .requiredOption('--base-url <url>', 'where rotor serve answers, e.g. http://127.0.0.1:8080')
    .option('--interval-ms <n>', 'time between cycles', '5000')
    .option(
      '--identity <name>',
      'signing identity whose anchor this verifier holds (default: $ROTOR_IDENTITY)',
    )
    .requiredOption(
      '--root <b64url>',
      'a pinned anchor root public key (rotor anchor root show); repeat for each root key',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--root-threshold <n>', 'how many pinned root keys must sign an anchor', '1')
    .option(
      '--root-version <n>',
      "the pinned root set's number (root_version in rotor anchor root show): a later one is reached through the root chain",
      '1',
    )
    .option(
      '--manifests <file>',
      'one manifest per line (v0.1 JSON text, or a v0.2 envelope as hex), re-read each cycle and verified',
    )
    .option('--once', 'run one cycle and exit: 0 when the refresh and the check-in succeeded')
    .action(async (opts: RunOptions) => {
      const intervalMs = positiveInt(opts.intervalMs, '--interval-ms', 5000);
      const v = new ReferenceVerifier({
        id: opts.id,
        baseUrl: opts.baseUrl,
        identity: opts.identity ?? config.verifier.identity,
        checkInToken: config.verifier.checkInCredential,
        root: pinnedRoot(opts.root, positiveInt(opts.rootThreshold, '--root-threshold', 1)),
        rootVersion: positiveInt(opts.rootVersion, '--root-version', 1),
      });
      const manifests = () => (opts.manifests ? readManifestLines(opts.manifests) : []);
      const printCycle = (verdicts: Verdict[]) =>
        process.stdout.write(`${JSON.stringify(cycleSummary(v, verdicts))}\n`);

      if (opts.once) {
        await v.refresh();
        const verdicts = (await manifests()).map((text) => v.verify(text));
        await v.checkIn();
        printCycle(verdicts);
        return;
      }
      const stop = () => {
        void v.stop();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      process.stderr.write(
        `verifier ${v.id} polling ${opts.baseUrl} every ${intervalMs} ms (Ctrl-C stops)\n`,
      );
      try {
        await v.runLoop({
          intervalMs,
          manifests,
          onCycle: printCycle,
          onError: (err) => process.stderr.write(`verifier ${v.id}: ${errorMessage(err)}\n`),
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

/** One manifest per non-blank line; a missing file is bad usage, named. */
async function readManifestLines(path: string): Promise<ManifestInput[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--manifests ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
    );
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(manifestFromLine);
}

function cycleSummary(v: ReferenceVerifier, verdicts: Verdict[]) {
  const results: Record<string, number> = {};
  for (const verdict of verdicts) results[verdict.result] = (results[verdict.result] ?? 0) + 1;
  return {
    verifier_id: v.id,
    anchor_version: v.anchorVersion,
    anchor_sha256: v.anchorSha256,
    root_version: v.rootVersion,
    trusted_key_ids: v.trustedKeyIds,
    revoked: v.revokedCount,
    results,
    valid_counts: v.validCounts,
  };
}
