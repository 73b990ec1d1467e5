/**
 * Plain-text tables and progress bars for terminals: no colour, so output reads the same in a
 * pager, a CI log and a chat paste. Used by `rotor rotate` and the demo's summary.
 */

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map(
      (r) =>
        `${r
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

export function progressBar(p: { done: number; total: number }, width = 30): string {
  const ratio = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const filled = Math.round(ratio * width);
  const percent = p.total > 0 ? `${Math.floor(ratio * 100)}%` : '-';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} ${percent}`;
}
