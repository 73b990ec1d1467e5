/**
 * What a person watching the demo sees on stderr. On a terminal: a block redrawn in place each
 * second (phase, timeline, progress, verifiers). Anywhere else (CI logs, pipes): one line per
 * change worth noting, so the log reads as a story rather than a flood.
 */
import { progressBar, table } from '../text/table';
import type { RotationStatus } from '../workflows/rotation-api';
import type { DemoVerifier } from './verifiers';

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** `+12.3s` from t=0, or `-` when the time is unknown. */
export function since(t0: number, iso: string | undefined): string {
  if (!iso) return '-';
  return `+${((Date.parse(iso) - t0) / 1000).toFixed(1)}s`;
}

export function timelineTable(s: RotationStatus): string[] {
  const t0 = Date.parse(s.startedAt);
  const rows = [['STEP', 'PLANNED', 'STARTED', 'ENDED', 'NOTE']];
  for (const e of s.timeline) {
    rows.push([
      e.step,
      `+${Math.max(0, Math.round((Date.parse(e.plannedAt) - t0) / 1000))}s`,
      since(t0, e.actualStart),
      e.actualEnd ? since(t0, e.actualEnd) : e.actualStart ? 'running' : '',
      e.note ?? '',
    ]);
  }
  return table(rows).trimEnd().split('\n');
}

export function verifierTable(s: RotationStatus | undefined, verifiers: DemoVerifier[]): string[] {
  const rows = [
    ['VERIFIER', 'ANCHOR', 'KEYS', 'ADOPTED', 'ACCEPTED NEW KEY', 'VALID', 'INVALID', 'REVOKED', 'NOTE'],
  ];
  for (const v of verifiers) {
    const seen = s?.adoption.verifiers.find((a) => a.verifierId === v.verifier.id);
    rows.push([
      v.verifier.id,
      v.verifier.anchorVersion > 0 ? `v${v.verifier.anchorVersion}` : '-',
      String(v.verifier.trustedKeyIds.length),
      seen ? yesNo(seen.adopted) : '-',
      seen ? yesNo(seen.acceptedNewKey) : '-',
      String(v.tally.VALID),
      String(v.tally.INVALID + v.tally.EXPIRED),
      String(v.tally.REVOKED),
      v.lastError ?? '',
    ]);
  }
  return table(rows).trimEnd().split('\n');
}

/** The workflow's blockers name absolute times; next to a t=0 display, offsets read better. */
export function blockersOf(s: RotationStatus): string[] {
  const t0 = Date.parse(s.startedAt);
  return s.blockers.map((b) =>
    b.replace(
      /\b(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)/g,
      (iso) => `+${Math.round((Date.parse(iso) - t0) / 1000)}s`,
    ),
  );
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'no';
}

function stateOf(s: RotationStatus): string {
  return s.paused ? `${s.phase} (PAUSED: ${s.pauseReason ?? 'no reason given'})` : s.phase;
}

export class LiveView {
  readonly #out: Output;
  readonly #tty: boolean;
  #drawn = 0;
  #lastKey = '';
  #lastLineAt = 0;

  constructor(
    out: Output,
    readonly timelineSeconds: number,
  ) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** A line that stays, printed above the live block. */
  note(line: string): void {
    this.#clear();
    this.#out.write(`${line}\n`);
  }

  update(s: RotationStatus, verifiers: DemoVerifier[], now = Date.now()): void {
    const elapsed = (now - Date.parse(s.startedAt)) / 1000;
    if (this.#tty) {
      this.#draw(this.#block(s, verifiers, elapsed));
      return;
    }
    const adopted = s.adoption.verifiers.filter((v) => v.adopted).length;
    const accepted = s.adoption.verifiers.filter((v) => v.acceptedNewKey).length;
    const key = [
      stateOf(s),
      s.anchorVersion,
      adopted,
      accepted,
      s.progress.resign.done === s.progress.resign.total,
      s.progress.revoke.done,
    ].join('|');
    if (key === this.#lastKey && now - this.#lastLineAt < 10_000) return;
    this.#lastKey = key;
    this.#lastLineAt = now;
    const live = s.adoption.verifiers.length;
    this.#out.write(
      `  +${elapsed.toFixed(0).padStart(3)}s  ${stateOf(s).padEnd(15)} re-signed ${s.progress.resign.done}/${s.progress.resign.total}` +
        `  revoked ${s.progress.revoke.done}/${s.progress.revoke.total}  anchor v${s.anchorVersion ?? '-'}` +
        (live > 0 ? `  verifiers adopted ${adopted}/${live}, accepted new key ${accepted}/${live}` : '') +
        (s.blockers[0] ? `  (${blockersOf(s)[0]})` : '') +
        '\n',
    );
  }

  /** Takes the live block away: the summary that follows says it all again. */
  done(): void {
    this.#clear();
  }

  #block(s: RotationStatus, verifiers: DemoVerifier[], elapsed: number): string[] {
    return [
      `  t=+${Math.floor(elapsed)}s of ~${this.timelineSeconds}s   phase ${stateOf(s)}   anchor v${s.anchorVersion ?? '-'}`,
      '',
      ...timelineTable(s).map((l) => `  ${l}`),
      '',
      `  re-sign  ${progressBar(s.progress.resign)}`,
      `  revoke   ${progressBar(s.progress.revoke)}`,
      '',
      ...verifierTable(s, verifiers).map((l) => `  ${l}`),
      '',
      `  now: ${s.blockers.length > 0 ? blockersOf(s).join('; ') : 'no blockers'}`,
    ];
  }

  #draw(lines: string[]): void {
    const width = Math.max(40, (this.#out.columns ?? 120) - 1);
    // A line that wraps would throw off the cursor arithmetic of the next redraw.
    const fitted = lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
    this.#clear();
    this.#out.write(`${fitted.join('\n')}\n`);
    this.#drawn = fitted.length;
  }

  #clear(): void {
    if (!this.#tty || this.#drawn === 0) return;
    this.#out.write(`\x1b[${this.#drawn}F\x1b[0J`);
    this.#drawn = 0;
  }
}
