/**
 * The harness's picture: verification results per second by key (VALID solid, intended rejections
 * dotted, false rejections red), with each rotation's phase changes marked. Plain SVG text, no
 * library: a few polylines and labels.
 */
import type { HarnessReport } from './harness';

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf', '#bcbd22', '#e377c2'];
const W = 1240;
const H = 520;
const M = { left: 56, right: 200, top: 130, bottom: 40 };

/** Short names for the phase labels; steps that take no visible time are not labelled. */
const SHORT: Record<string, string | null> = {
  preflight: null,
  keygen: null,
  completed: null,
  'rolled-back': null,
  'publish-anchor': 'anchor',
  'await-adoption': 'adoption',
  'pre-revocation': 'pickup/analysis',
  decommission: 'decomm.',
  'rolling-back': 'rolling back',
  'compromise publish-anchor': 'DISTRUST',
  'compromise revoke': 'revoke all',
  'compromise re-sign': 're-sign',
  'compromise decommission': 'decomm.',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function chartSvg(report: HarnessReport, title: string): string {
  const keys = Object.keys(report.series).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  const seconds = Math.max(1, ...keys.map((k) => report.series[k]!.valid.length));
  const falseSum = new Array<number>(seconds).fill(0);
  for (const k of keys) {
    for (const [i, n] of report.series[k]!.false.entries()) falseSum[i]! += n;
  }
  let yMax = 1;
  for (const k of keys) {
    const s = report.series[k]!;
    for (let i = 0; i < seconds; i++) yMax = Math.max(yMax, s.valid[i] ?? 0, s.intended[i] ?? 0);
  }
  yMax = niceCeil(yMax);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (sec: number) => M.left + (sec / seconds) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${M.left}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  // Axes and grid.
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    out.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`,
    );
  }
  const xStep = niceCeil(seconds / 12);
  for (let s = 0; s <= seconds; s += xStep) {
    out.push(`<text x="${x(s)}" y="${M.top + ph + 16}" text-anchor="middle">${s}</text>`);
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 6}" text-anchor="middle">seconds since the agents began presenting</text>`,
    `<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">results per second</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  // Phase boundaries: a line per change; the rotation's name where it begins, the phases beside
  // it. Phases a few pixels apart (steps that took a fraction of a second) share one label.
  let lastScenario = '';
  const labels: { x: number; text: string[] }[] = [];
  for (const mark of report.marks) {
    const sec = mark.at / 1000;
    const [scenario, phase] = mark.label.includes(':') ? mark.label.split(':') : ['', mark.label];
    const major = scenario !== lastScenario && scenario !== '';
    out.push(
      `<line x1="${x(sec)}" x2="${x(sec)}" y1="${M.top}" y2="${M.top + ph}" stroke="${major ? '#444' : '#bbb'}" stroke-dasharray="${major ? '' : '3 3'}"/>`,
    );
    if (major) {
      out.push(`<text x="${x(sec) + 3}" y="42" font-weight="bold">${esc(scenario!)}</text>`);
      lastScenario = scenario!;
    }
    const name =
      phase === undefined || phase.startsWith('waiting') ? null : phase in SHORT ? SHORT[phase] : phase;
    if (name && phase !== 'before') {
      const prev = labels.at(-1);
      if (prev && x(sec) - prev.x < 14) prev.text.push(name);
      else labels.push({ x: x(sec), text: [name] });
    }
  }
  for (const l of labels) {
    out.push(
      `<text transform="translate(${l.x + 2} ${M.top - 4}) rotate(-50)" font-size="9" fill="#555">${esc(l.text.join(' / '))}</text>`,
    );
  }
  const poly = (values: number[], attrs: string) => {
    const pts = values.map((v, i) => `${x(i + 0.5).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" points="${pts}" ${attrs}/>`);
  };
  keys.forEach((k, i) => {
    const c = COLORS[i % COLORS.length];
    poly(report.series[k]!.valid, `stroke="${c}" stroke-width="1.6"`);
    if (report.series[k]!.intended.some((n) => n > 0))
      poly(report.series[k]!.intended, `stroke="${c}" stroke-width="1.4" stroke-dasharray="2 2"`);
  });
  poly(falseSum, `stroke="#d62728" stroke-width="2"`);
  // Legend.
  const lx = M.left + pw + 12;
  let ly = M.top + 6;
  keys.forEach((k, i) => {
    const c = COLORS[i % COLORS.length];
    const id = report.keyLabels[k]?.slice(0, 8) ?? '';
    out.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
      `<text x="${lx + 28}" y="${ly + 4}">${k} VALID (${id}…)</text>`,
    );
    ly += 16;
    if (report.series[k]!.intended.some((n) => n > 0)) {
      out.push(
        `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2" stroke-dasharray="2 2"/>`,
        `<text x="${lx + 28}" y="${ly + 4}">${k} intended rej.</text>`,
      );
      ly += 16;
    }
  });
  out.push(
    `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="#d62728" stroke-width="2"/>`,
    `<text x="${lx + 28}" y="${ly + 4}">false rejections (${report.false})</text>`,
  );
  ly += 24;
  out.push(
    `<text x="${lx}" y="${ly}" font-size="10" fill="#555">${report.totalVerifications} verifications,</text>`,
    `<text x="${lx}" y="${ly + 13}" font-size="10" fill="#555">${Math.round(report.rate)}/s over ${report.verifiers} verifiers</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

function niceCeil(v: number): number {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
