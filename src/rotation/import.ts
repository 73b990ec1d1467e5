/**
 * Manifests into the store as a stream: any source of texts (a file's lines, a folder, stdin, the
 * synthetic generator) goes in batches of one transaction each, so memory stays flat whatever the
 * count. The one way rotor's CLI, demo, tests and benchmarks fill the store.
 */
import { RotorError } from '../errors';
import type { Signer } from '../manifest';
import { type ImportItem, type ImportVerification, importManifests } from '../store/manifests';
import type { Queryable } from '../store/queryable';
import { type SyntheticOptions, syntheticManifests } from '../synthetic/manifests';

/**
 * A record its reader refused before the store saw it (not UTF-8, too long): counted and reported
 * with the store's own rejections, in the order the records came.
 */
export interface RefusedRecord {
  source: string;
  refused: string;
}

export type ImportRecord = ImportItem | RefusedRecord;

export interface ImportTotals {
  imported: number;
  duplicates: number;
  rejected: number;
}

export interface ImportStreamOptions {
  /** Manifests per transaction; default 500. */
  batchSize?: number;
  /** How the store trusts what it takes (default `registry`: verified under the key registry). */
  verify?: ImportVerification;
  /** Told of each rejected record (its source and why); default: the import fails on the first. */
  onRejected?: (rejection: { source: string; reason: string }) => void;
  /** After each batch is stored (progress, or a check that throws to stop). */
  afterBatch?: (totals: ImportTotals) => void | Promise<void>;
}

export async function importStream(
  q: Queryable,
  items: AsyncIterable<ImportRecord> | Iterable<ImportRecord>,
  options: ImportStreamOptions = {},
): Promise<ImportTotals> {
  const size = options.batchSize ?? 500;
  const onRejected =
    options.onRejected ??
    ((r: { source: string; reason: string }) => {
      throw new RotorError(`import rejected ${r.source}: ${r.reason}`, 'IMPORT_REJECTED');
    });
  const totals: ImportTotals = { imported: 0, duplicates: 0, rejected: 0 };
  let batch: ImportItem[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const result = await importManifests(q, batch, { verify: options.verify ?? 'registry' });
    batch = [];
    totals.imported += result.imported;
    totals.duplicates += result.duplicates;
    for (const r of result.rejected) {
      totals.rejected++;
      onRejected(r);
    }
    await options.afterBatch?.(totals);
  };
  for await (const item of items) {
    if ('refused' in item) {
      totals.rejected++;
      onRejected({ source: item.source, reason: item.refused });
      continue;
    }
    batch.push(item);
    if (batch.length >= size) await flush();
  }
  await flush();
  return totals;
}

/**
 * Stores `count` synthetic manifests signed by `signer` (sources `seed:1`, `seed:2`, …). Synthetic
 * manifests are valid by construction, so by default a rejection fails the seeding.
 */
export async function seedManifests(
  q: Queryable,
  signer: Signer,
  count: number,
  options: ImportStreamOptions & SyntheticOptions = {},
): Promise<ImportTotals> {
  const { batchSize, verify, onRejected, afterBatch, ...synthetic } = options;
  async function* items(): AsyncGenerator<ImportItem> {
    let n = 0;
    for await (const text of syntheticManifests(count, signer, synthetic)) {
      yield { text, source: `seed:${++n}` };
    }
  }
  return importStream(q, items(), { batchSize, verify, onRejected, afterBatch });
}
