/** `rotor crl verify`: checks every line of a FileCRL and says which records hold and which do not. */
import type { Command } from 'commander';
import { keyIdOf } from '../../manifest/index';
import { parsePublicKey, readCrlFrom, writeJson } from './manifest';

export function registerCrlCommands(program: Command): void {
  const crl = program.command('crl').description('FileCRL JSON-lines revocation lists');
  crl
    .command('verify')
    .description(
      'check each record\'s signature; prints {"accepted":[manifest_id...],"rejected":[{"line","reason"}]}; exit 1 when any line is rejected',
    )
    .argument('<file>', 'CRL file or http(s) URL')
    .requiredOption('--public-key <b64url...>', 'trusted signer public key(s), base64url')
    .action(async (file: string, opts: { publicKey: string[] }) => {
      const trustedKeys = new Map<string, Uint8Array>();
      for (const text of opts.publicKey) {
        const pk = parsePublicKey(text);
        trustedKeys.set(keyIdOf(pk), pk);
      }
      const report = await readCrlFrom(file, trustedKeys);
      // The SDK keeps one record per manifest_id; the list names each once, in first-seen order.
      const accepted = [...new Set(report.accepted.map((r) => r.manifestId))];
      writeJson({ accepted, rejected: report.rejected });
      if (report.rejected.length > 0) process.exitCode = 1;
    });
}
