/**
 * `rotor manifests ...`: the manifest store. import (JSON lines, or one document per .json file),
 * export (JSON lines, text as stored), seed (synthetic signed manifests), stats.
 * stdout carries data (export lines, JSON totals); rejections and progress go to stderr. Import and
 * seed stream through src/rotation/import.ts in batches of one transaction each.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { positiveInt } from '../../config';
import { openCustodian } from '../../custody';
import { UsageError } from '../../errors';
import { importStream, seedManifests } from '../../rotation/import';
import { withPool } from '../../store/db';
import { requireKey } from '../../store/keys';
import {
  checkStatus,
  checkVersion,
  type ImportItem,
  type ManifestStatus,
  pageManifests,
  statsByKey,
} from '../../store/manifests';

const LINE_FILES = new Set(['.jsonl', '.ndjson']);
const DOCUMENT_FILES = new Set(['.json']);
/** One v0.2 COSE envelope per file, binary. */
const ENVELOPE_FILES = new Set(['.cbor', '.cose']);
/** A line of hex digits is a v0.2 envelope (`manifests export` writes them so); anything else is JSON text. */
const HEX_LINE = /^[0-9a-fA-F]+$/;

/** One import line: a v0.1 JSON document, or a v0.2 envelope as hex. */
export function lineItem(line: string, source: string): ImportItem {
  const t = line.trim();
  if (HEX_LINE.test(t)) {
    if (t.length % 2 !== 0) {
      // Reported through the import like any other bad record: an odd hex line is not an envelope.
      return { envelope: new Uint8Array(0), source: `${source} (odd number of hex digits)` };
    }
    return { envelope: Uint8Array.from(Buffer.from(t, 'hex')), source };
  }
  return { text: line, source };
}

/** Each rejection on stderr, with its source; the import goes on. */
function reportRejected(r: { source: string; reason: string }): void {
  const reason = r.reason.startsWith(r.source) ? r.reason : `${r.source}: ${r.reason}`;
  process.stderr.write(`rotor: rejected ${reason}\n`);
}

async function* lineItems(input: Readable, name: string): AsyncGenerator<ImportItem> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    yield lineItem(line, `${name}:${n}`);
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (
      LINE_FILES.has(extname(entry.name)) ||
      DOCUMENT_FILES.has(extname(entry.name)) ||
      ENVELOPE_FILES.has(extname(entry.name))
    )
      out.push(path);
  }
  return out;
}

async function* fileItems(path: string): AsyncGenerator<ImportItem> {
  if (ENVELOPE_FILES.has(extname(path))) {
    // The envelope's bytes are the copy of record, kept exactly as read.
    yield { envelope: new Uint8Array(await fs.readFile(path)), source: path };
    return;
  }
  if (DOCUMENT_FILES.has(extname(path))) {
    // One document per .json file: its text is kept as written, bar the whitespace around it.
    yield { text: (await fs.readFile(path, 'utf8')).trim(), source: path };
    return;
  }
  yield* lineItems(createReadStream(path, 'utf8'), path);
}

/** FILE, DIR or - (stdin) as a stream of items; a missing path or an empty folder is a usage error. */
async function* sourceItems(source: string): AsyncGenerator<ImportItem> {
  if (source === '-') {
    process.stdin.setEncoding('utf8');
    yield* lineItems(process.stdin, 'stdin');
    return;
  }
  let stat: Awaited<ReturnType<typeof fs.stat>>;
  try {
    stat = await fs.stat(source);
  } catch {
    throw new UsageError(`${source}: no such file or directory`);
  }
  const files = stat.isDirectory() ? await filesUnder(source) : [source];
  if (stat.isDirectory() && files.length === 0) {
    throw new UsageError(`${source}: no .json, .jsonl, .ndjson or .cbor files in this directory`);
  }
  for (const file of files) yield* fileItems(file);
}

async function write(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

export function registerManifestsCommands(program: Command): void {
  const manifests = program.command('manifests').description('the manifest store in Postgres');

  manifests
    .command('import <source>')
    .description(
      'import manifests from FILE, DIR or - (stdin): .jsonl/.ndjson and stdin hold one manifest per line ' +
        '(v0.1 JSON text, or a v0.2 COSE envelope as hex), .json files one v0.1 document, .cbor files one v0.2 envelope; ' +
        'bad records are reported with their source and line; exits 1 if any were rejected',
    )
    .action(async (source: string) => {
      await withPool(async (pool) => {
        const totals = await importStream(pool, sourceItems(source), { onRejected: reportRejected });
        const { imported, duplicates, rejected } = totals;
        process.stdout.write(`${JSON.stringify({ imported, duplicates, rejected })}\n`);
        if (rejected > 0) process.exitCode = 1;
      });
    });

  manifests
    .command('export')
    .description(
      'write stored manifests one per line in manifest_id order: v0.1 JSON text exactly as stored, v0.2 envelopes as hex of the stored bytes',
    )
    .option('--key-id <key_id>', 'only manifests signed by this key')
    .option('--status <status>', 'only manifests in this status (active, superseded, revoked)')
    .option('--version <version>', 'only manifests of this version (0.1, 0.2)')
    .action(async (opts: { keyId?: string; status?: string; version?: string }) => {
      const status: ManifestStatus | undefined =
        opts.status === undefined ? undefined : checkStatus(opts.status);
      const version = opts.version === undefined ? undefined : checkVersion(opts.version);
      await withPool(async (pool) => {
        let after: string | null = null;
        let multiLine = 0;
        for (;;) {
          const page = await pageManifests(pool, {
            keyId: opts.keyId,
            status,
            version,
            afterManifestId: after,
            limit: 1000,
          });
          if (page.length === 0) break;
          let chunk = '';
          for (const m of page) {
            if (m.envelope !== null) {
              chunk += `${Buffer.from(m.envelope).toString('hex')}\n`;
              continue;
            }
            let text = m.text ?? '';
            // A raw line break can only sit between JSON tokens, where it is insignificant; one
            // line per manifest needs it gone. The value and signature are unchanged.
            if (/[\r\n]/.test(text)) {
              multiLine++;
              text = text.replace(/\r\n|\r|\n/g, ' ');
            }
            chunk += `${text}\n`;
          }
          await write(chunk);
          after = page[page.length - 1]!.manifestId;
        }
        if (multiLine > 0) {
          process.stderr.write(
            `rotor: ${multiLine} manifests were stored with line breaks between tokens; written with spaces instead\n`,
          );
        }
      });
    });

  manifests
    .command('seed')
    .description('store synthetic, valid, varied manifests signed by a registered key (demos, benchmarks)')
    .requiredOption('--count <n>', 'how many manifests')
    .requiredOption('--key-id <key_id>', 'a key in the key registry; its custodian signs')
    .option('--seed <n>', 'varies the generated shapes', '1')
    .action(async (opts: { count: string; keyId: string; seed: string }) => {
      const count = positiveInt(opts.count, '--count', 1);
      const seed = positiveInt(opts.seed, '--seed', 1);
      await withPool(async (pool) => {
        const key = await requireKey(pool, opts.keyId);
        const custodian = await openCustodian(key.custodian);
        try {
          const signer = await custodian.signer(key.handle);
          const totals = await seedManifests(pool, signer, count, { seed, onRejected: reportRejected });
          process.stdout.write(`${JSON.stringify({ key_id: key.keyId, imported: totals.imported })}\n`);
        } finally {
          await custodian.close();
        }
      });
    });

  manifests
    .command('stats')
    .description('count stored manifests by signing key and status')
    .action(async () => {
      await withPool(async (pool) => {
        const keys = new Map<string, Record<ManifestStatus | 'total', number>>();
        let total = 0;
        for (const row of await statsByKey(pool)) {
          const name = row.keyId ?? '(unsigned)';
          const entry = keys.get(name) ?? { active: 0, superseded: 0, revoked: 0, quarantined: 0, total: 0 };
          entry[row.status] += row.count;
          entry.total += row.count;
          total += row.count;
          keys.set(name, entry);
        }
        const out = [...keys].map(([keyId, counts]) => ({ key_id: keyId, ...counts }));
        process.stdout.write(`${JSON.stringify({ total, keys: out })}\n`);
      });
    });
}
