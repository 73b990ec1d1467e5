/**
 * `rotor manifests ...`: the manifest store. import (JSON lines, or one document per .json file),
 * export (JSON lines, text as stored), seed (synthetic signed manifests), stats. import and seed
 * read and render here; the store is filled by the rotation layer's one streaming import
 * (src/rotation/import.ts), a transaction per batch.
 * stdout carries data (export lines, JSON totals); rejections and progress go to stderr.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { positiveInt, type RotorConfig } from '../../config';
import { openCustodian } from '../../custody';
import { UsageError } from '../../errors';
import { type ImportRecord, importStream, seedManifests } from '../../rotation/import';
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
/** Largest manifest an import reads (a line, a .json file, an envelope); longer lines are skipped unread. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** One import line: a v0.1 JSON document, or a v0.2 envelope as hex. */
export function lineItem(line: string, source: string): ImportItem {
  const t = line.trim();
  if (HEX_LINE.test(t)) {
    if (t.length % 2 !== 0) {
      // Reported through the importer like any other bad record: an odd hex line is not an envelope.
      return { envelope: new Uint8Array(0), source: `${source} (odd number of hex digits)` };
    }
    return { envelope: Uint8Array.from(Buffer.from(t, 'hex')), source };
  }
  return { text: line, source };
}

/**
 * One record per line, read as bytes: a line is decoded as strict UTF-8 (an invalid byte refuses
 * the line rather than becoming U+FFFD), and a line longer than MAX_MANIFEST_BYTES is refused
 * without being held whole in memory (its bytes are dropped as they arrive).
 */
async function* linesOf(input: Readable, name: string): AsyncGenerator<ImportRecord> {
  let n = 1;
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const endLine = (): ImportRecord | undefined => {
    const source = `${name}:${n}`;
    n++;
    const refusedWhole = tooLong;
    const bytes = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    tooLong = false;
    if (refusedWhole) {
      return { source, refused: `longer than ${MAX_MANIFEST_BYTES} bytes: refused without reading it whole` };
    }
    const line =
      bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.subarray(0, bytes.length - 1) : bytes;
    let text: string;
    try {
      text = UTF8.decode(line);
    } catch {
      return { source, refused: 'is not valid UTF-8' };
    }
    return text.trim() === '' ? undefined : lineItem(text, source);
  };
  for await (const chunk of input) {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    for (;;) {
      const nl = buf.indexOf(0x0a);
      const piece = nl === -1 ? buf : buf.subarray(0, nl);
      if (!tooLong) {
        if (size + piece.length > MAX_MANIFEST_BYTES) {
          tooLong = true;
          parts = [];
          size = 0;
        } else {
          parts.push(Buffer.from(piece));
          size += piece.length;
        }
      }
      if (nl === -1) break;
      const record = endLine();
      if (record) yield record;
      buf = buf.subarray(nl + 1);
    }
  }
  if (size > 0 || tooLong) {
    const record = endLine();
    if (record) yield record;
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

async function* recordsOfFile(path: string): AsyncGenerator<ImportRecord> {
  if (ENVELOPE_FILES.has(extname(path)) || DOCUMENT_FILES.has(extname(path))) {
    const { size } = await fs.stat(path);
    if (size > MAX_MANIFEST_BYTES) {
      yield { source: path, refused: `is ${size} bytes, more than ${MAX_MANIFEST_BYTES}: not read` };
      return;
    }
  }
  if (ENVELOPE_FILES.has(extname(path))) {
    // The envelope's bytes are the copy of record, kept exactly as read.
    yield { envelope: new Uint8Array(await fs.readFile(path)), source: path };
    return;
  }
  if (DOCUMENT_FILES.has(extname(path))) {
    // One document per .json file: its text is kept as written, bar the whitespace around it.
    let text: string;
    try {
      text = UTF8.decode(await fs.readFile(path));
    } catch {
      yield { source: path, refused: 'is not valid UTF-8' };
      return;
    }
    yield { text: text.trim(), source: path };
    return;
  }
  yield* linesOf(createReadStream(path), path);
}

/**
 * The records of FILE, DIR or `-` (stdin), in order. A source that is not there, or a folder with
 * nothing to import, is a usage error before anything is read.
 */
async function recordsOf(source: string): Promise<AsyncIterable<ImportRecord>> {
  if (source === '-') return linesOf(process.stdin, 'stdin');
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
  return (async function* () {
    for (const file of files) yield* recordsOfFile(file);
  })();
}

/** Each rejected record on stderr, named by its source (file and line) and why. */
function reportRejected(r: { source: string; reason: string }): void {
  const reason = r.reason.startsWith(r.source) ? r.reason : `${r.source}: ${r.reason}`;
  process.stderr.write(`rotor: rejected ${reason}\n`);
}

async function write(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

export function registerManifestsCommands(program: Command, config: RotorConfig): void {
  const manifests = program.command('manifests').description('the manifest store in Postgres');

  manifests
    .command('import <source>')
    .description(
      'import manifests from FILE, DIR or - (stdin): .jsonl/.ndjson and stdin hold one manifest per line ' +
        '(v0.1 JSON text, or a v0.2 COSE envelope as hex), .json files one v0.1 document, .cbor files one v0.2 envelope; ' +
        'bad records are reported with their source and line; exits 1 if any were rejected. ' +
        "Each manifest must verify under the key rotor's registry holds for its key_id; refused: invalid UTF-8, " +
        'a byte order mark, a repeated member name, a manifest_id that is not a UUID, more than 1 MiB',
    )
    .option(
      '--unverified',
      'store manifests whose signature is not checked, as quarantined: no rotation ever re-issues or revokes them',
    )
    .action(async (source: string, opts: { unverified?: boolean }) => {
      const records = await recordsOf(source);
      await withPool(config.databaseUrl, async (pool) => {
        const totals = await importStream(pool, records, {
          verify: opts.unverified ? 'quarantine' : 'registry',
          onRejected: reportRejected,
        });
        process.stdout.write(`${JSON.stringify(totals)}\n`);
        if (totals.rejected > 0) process.exitCode = 1;
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
      await withPool(config.databaseUrl, async (pool) => {
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
      await withPool(config.databaseUrl, async (pool) => {
        const key = await requireKey(pool, opts.keyId);
        const custodian = await openCustodian(key.custodian, config.custody);
        try {
          const signer = await custodian.signer(key.handle);
          // Synthetic manifests are valid by construction; one refused is still reported, not fatal.
          const { imported } = await seedManifests(pool, signer, count, { seed, onRejected: reportRejected });
          process.stdout.write(`${JSON.stringify({ key_id: key.keyId, imported })}\n`);
        } finally {
          await custodian.close();
        }
      });
    });

  manifests
    .command('stats')
    .description('count stored manifests by signing key and status')
    .action(async () => {
      await withPool(config.databaseUrl, async (pool) => {
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
