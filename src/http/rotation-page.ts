/**
 * The live rotation page, `GET /rotations/{identity}` on `rotor serve`: what `rotor rotate status`
 * shows, for a person watching in a browser, plus what only the service knows (agent pickup and
 * the verification results verifiers report at check-in, as a chart). Read-only: every control is
 * shown as the CLI command that does it. Server-rendered HTML; a small script (`page.js`) re-fetches
 * the live part every second and swaps it in. No framework: the page is a few tables and one SVG.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IDENTITY_NAME } from '../domain';
import type { Pool } from '../store/db';
import { getRelease, type PickupCounts, pickupCounts, type ReleaseRecord } from '../store/delivery';
import { type BucketRow, resultBuckets } from '../store/verification-results';
import type { RotationStatus } from '../workflows/rotation-api';
import { HttpError } from './respond';

/**
 * The page is behind a token like check-in: `Authorization: Bearer TOKEN`, or HTTP Basic with the
 * token as the password (what a browser can send: it prompts once, then sends it with every
 * request of the page, the script's fetches included). Without a configured token the page is
 * switched off (503), never open.
 */
export function authorizePage(req: IncomingMessage, expected: string | undefined): void {
  if (!expected) {
    throw new HttpError(503, 'PAGE_DISABLED', 'the rotation page is not configured (ROTOR_PAGE_TOKEN unset)');
  }
  const header = req.headers.authorization ?? '';
  let presented: string | undefined;
  const bearer = /^Bearer ([^\s]+)$/i.exec(header);
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header);
  if (bearer) presented = bearer[1];
  else if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    presented = colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  const challenge = { 'WWW-Authenticate': 'Basic realm="rotor rotation page", charset="UTF-8"' };
  if (presented === undefined)
    throw new HttpError(401, 'UNAUTHORIZED', 'the rotation page needs the page token', challenge);
  const digest = (t: string) => createHash('sha256').update(t).digest();
  if (!timingSafeEqual(digest(presented), digest(expected))) {
    throw new HttpError(401, 'UNAUTHORIZED', 'the page token is not valid', challenge);
  }
}

export const PAGE_PREFIX = '/rotations/';

export interface PageSources {
  pool: Pool;
  /** The identity's current (or last) rotation status, from Temporal; null when there is none. */
  rotationStatus?: (identity: string) => Promise<RotationStatus | null>;
  bucketSeconds: number;
  manifestMaxAgeSeconds: number;
}

export interface PageData {
  identity: string;
  now: Date;
  status: RotationStatus | null;
  statusError?: string;
  pickup: (PickupCounts & { release: ReleaseRecord | null }) | null;
  buckets: BucketRow[];
  bucketSeconds: number;
  manifestMaxAgeSeconds: number;
}

export async function loadPageData(sources: PageSources, identity: string): Promise<PageData> {
  let status: RotationStatus | null = null;
  let statusError: string | undefined;
  if (!sources.rotationStatus) statusError = 'this service is not connected to Temporal (TEMPORAL_ADDRESS)';
  else {
    try {
      status = await sources.rotationStatus(identity);
    } catch (err) {
      statusError = `the rotation status could not be read from Temporal: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    }
  }
  let pickup: PageData['pickup'] = null;
  if (status?.newKeyId) {
    pickup = {
      ...(await pickupCounts(sources.pool, status.newKeyId)),
      release: await getRelease(sources.pool, status.newKeyId),
    };
  }
  const since = status ? new Date(Date.parse(status.startedAt) - 10_000) : new Date(Date.now() - 3_600_000);
  const buckets = await resultBuckets(sources.pool, identity, since);
  return {
    identity,
    now: new Date(),
    status,
    statusError,
    pickup,
    buckets,
    bucketSeconds: sources.bucketSeconds,
    manifestMaxAgeSeconds: sources.manifestMaxAgeSeconds,
  };
}

// ---- rendering -----------------------------------------------------------------------------------

const esc = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const short = (keyId: string | undefined) => (keyId ? `${keyId.slice(0, 12)}…` : '-');

function offsetText(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 0) return `-${offsetText(-ms).slice(1)}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `+${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${sec}s`;
}

function bar(testId: string, label: string, done: number, total: number): string {
  const pct = total > 0 ? Math.floor((Math.min(done, total) / total) * 100) : 0;
  return `<div class="bar" data-testid="${esc(testId)}"><span class="label">${esc(label)}</span>
<progress max="${Math.max(total, 1)}" value="${Math.min(done, total)}"></progress>
<span class="figure">${done}/${total}${total > 0 ? ` (${pct}%)` : ''}</span></div>`;
}

const ENDED = new Set(['completed', 'rolled-back', 'aborted', 'failed', 'skipped']);

function revocationStarted(s: RotationStatus): boolean {
  return (
    s.progress.revoke.total > 0 || s.timeline.some((e) => e.step === 'revoke' && e.actualStart !== undefined)
  );
}

/** The controls that apply now, each as the command that does it. */
function controls(s: RotationStatus): { what: string; command: string }[] {
  const id = s.identity;
  if (ENDED.has(s.phase)) {
    return [
      {
        what: 'start a new rotation',
        command: `rotor rotate start --identity ${id} --trigger personnel --reason '…'`,
      },
    ];
  }
  const out: { what: string; command: string }[] = [
    { what: 'watch in a terminal', command: `rotor rotate status ${id} --watch` },
  ];
  if (s.paused) {
    out.push({ what: 'resume', command: `rotor rotate resume ${id} --reason '…'` });
    out.push({
      what: 'resume past the gate that paused it (that gate only)',
      command: `rotor rotate resume ${id} --force --reason '…'`,
    });
  } else {
    out.push({ what: 'pause', command: `rotor rotate pause ${id} --reason '…'` });
  }
  if (!revocationStarted(s) && s.phase !== 'rolling-back') {
    if (s.trigger !== 'compromise') {
      out.push({ what: 'roll back (keep the old key)', command: `rotor rotate rollback ${id} --reason '…'` });
    }
    out.push({ what: 'abort', command: `rotor rotate abort ${id} --reason '…'` });
  }
  return out;
}

function timeline(s: RotationStatus): string {
  const t0 = Date.parse(s.startedAt);
  const rows = s.timeline
    .map((e) => {
      const planned = Date.parse(e.plannedAt);
      const started = e.actualStart ? Date.parse(e.actualStart) : undefined;
      const ended = e.actualEnd ? Date.parse(e.actualEnd) : undefined;
      const state = ended !== undefined ? 'done' : started !== undefined ? 'running' : 'planned';
      const late =
        started !== undefined && started - planned > 2000 ? ` (${offsetText(started - planned)} late)` : '';
      return `<tr data-step="${esc(e.step)}" data-state="${state}"><td>${esc(e.step)}</td>
<td>${offsetText(planned - t0)}</td><td>${started !== undefined ? offsetText(started - t0) + esc(late) : '-'}</td>
<td>${ended !== undefined ? offsetText(ended - t0) : '-'}</td><td>${state}</td></tr>`;
    })
    .join('\n');
  return `<table data-testid="timeline"><thead><tr><th>step</th><th>planned</th><th>started</th><th>ended</th><th>state</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function adoption(s: RotationStatus): string {
  const a = s.adoption;
  const list = a.verifiers ?? [];
  const live = (a as { live?: number }).live ?? list.length;
  const behind = (a as { behind?: unknown }).behind;
  const behindCount = typeof behind === 'number' ? behind : list.filter((v) => !v.adopted).length;
  let summary: string;
  if (a.mode === 'pending') summary = 'not checked yet: the new anchor is not published';
  else if (a.mode === 'cache-lifetime')
    summary = 'no verifier checks in: adoption is the anchor’s cache lifetime having passed';
  else
    summary = `${live - behindCount} of ${live} live verifier(s) hold anchor version ${s.anchorVersion ?? '?'}`;
  const rows = list
    .map(
      (
        v,
      ) => `<tr data-verifier="${esc(v.verifierId)}"><td>${esc(v.verifierId)}</td><td>${esc(v.anchorVersion ?? '-')}</td>
<td>${v.adopted ? 'yes' : 'no'}</td><td>${v.acceptedNewKey ? 'yes' : 'no'}</td><td>${esc(v.lastSeen)}</td></tr>`,
    )
    .join('\n');
  return `<p data-testid="adoption-summary">${esc(summary)}</p>
${rows ? `<table><thead><tr><th>verifier</th><th>anchor</th><th>adopted</th><th>accepted new key</th><th>last seen</th></tr></thead><tbody>${rows}</tbody></table>` : ''}`;
}

function pickup(d: PageData): string {
  const s = d.status;
  const p = d.pickup;
  if (!s || !p) return '<p data-testid="pickup-summary">no re-issued manifests yet</p>';
  const held =
    p.release?.state === 'released'
      ? `released for delivery at ${p.release.releasedAt.toISOString()}${p.release.anchorVersion ? ` (verifiers adopted anchor v${p.release.anchorVersion})` : ''}`
      : p.release?.state === 'withdrawn'
        ? 'withdrawn: agents are handed their other valid manifests'
        : 'held: agents keep their original manifests until verifiers adopt the anchor that trusts the new key';
  return `<p data-testid="pickup-summary">${esc(held)}</p>
${bar('progress-pickup', 'picked up', p.pickedUp, p.twins)}
<p data-testid="pickup-counts">${p.pickedUp} picked up, ${p.seenNotPickedUp} seen fetching but not yet picked up, ${p.neverSeen} never seen fetching (agent cache lifetime ${d.manifestMaxAgeSeconds} s)</p>`;
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf'];

/** Results per second by key (VALID solid, rejections dashed red-ish), phase starts marked. */
export function chartSvg(d: PageData, width = 760, height = 240): string {
  const s = d.status;
  const t0 = s
    ? Date.parse(s.startedAt)
    : d.buckets.length
      ? d.buckets[0]!.bucket.getTime()
      : d.now.getTime();
  const tEnd = Math.max(
    s?.endedAt ? Date.parse(s.endedAt) : d.now.getTime(),
    ...d.buckets.map((b) => b.bucket.getTime() + d.bucketSeconds * 1000),
    t0 + 10_000,
  );
  const series = new Map<string, Map<number, number>>();
  const keyOrder: string[] = [];
  for (const b of d.buckets) {
    const name = `${b.keyId} ${b.outcome === 'VALID' ? 'VALID' : 'rejected'}`;
    if (!keyOrder.includes(b.keyId)) keyOrder.push(b.keyId);
    const m = series.get(name) ?? new Map<number, number>();
    series.set(name, m);
    const t = b.bucket.getTime();
    m.set(t, (m.get(t) ?? 0) + b.count / d.bucketSeconds);
  }
  const maxRate = Math.max(1, ...[...series.values()].flatMap((m) => [...m.values()]));
  const pad = { l: 48, r: 12, t: 12, b: 28 };
  const x = (t: number) => pad.l + ((t - t0) / (tEnd - t0)) * (width - pad.l - pad.r);
  const y = (v: number) => height - pad.b - (v / maxRate) * (height - pad.t - pad.b);
  const keyName = (k: string) =>
    k === s?.oldKeyId ? `old key ${short(k)}` : k === s?.newKeyId ? `new key ${short(k)}` : `key ${short(k)}`;
  const parts: string[] = [];
  parts.push(
    `<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" stroke="#444"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" stroke="#444"/>`,
    `<text x="4" y="${pad.t + 8}" font-size="10">${Math.round(maxRate)}/s</text>`,
    `<text x="${pad.l}" y="${height - 8}" font-size="10">+0s</text>`,
    `<text x="${width - pad.r - 40}" y="${height - 8}" font-size="10">${offsetText(tEnd - t0)}</text>`,
  );
  for (const e of s?.timeline ?? []) {
    if (!e.actualStart) continue;
    const px = x(Date.parse(e.actualStart)).toFixed(1);
    parts.push(
      `<line class="phase" data-phase="${esc(e.step)}" x1="${px}" y1="${pad.t}" x2="${px}" y2="${height - pad.b}" stroke="#999" stroke-dasharray="2,3"/>`,
      `<text x="${px}" y="${pad.t + 8}" font-size="9" transform="rotate(90 ${px} ${pad.t + 8})">${esc(e.step)}</text>`,
    );
  }
  const legend: string[] = [];
  for (const [name, points] of series) {
    const [keyId, kind] = name.split(' ') as [string, string];
    const color = kind === 'VALID' ? COLORS[keyOrder.indexOf(keyId) % COLORS.length]! : '#d62728';
    const dash = kind === 'VALID' ? '' : ' stroke-dasharray="5,3"';
    const sorted = [...points].sort(([a], [b]) => a - b);
    // Buckets with no report are zero, not interpolated: a gap in results is what the chart is for.
    const pts: string[] = [];
    let prev: number | undefined;
    for (const [t, v] of sorted) {
      if (prev !== undefined && t - prev > d.bucketSeconds * 1000) {
        pts.push(`${x(prev + d.bucketSeconds * 1000).toFixed(1)},${y(0).toFixed(1)}`);
        pts.push(`${x(t - d.bucketSeconds * 1000).toFixed(1)},${y(0).toFixed(1)}`);
      }
      pts.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      prev = t;
    }
    parts.push(
      `<polyline class="series" data-key="${esc(keyId)}" data-kind="${esc(kind)}" fill="none" stroke="${color}" stroke-width="1.5"${dash} points="${pts.join(' ')}"/>`,
    );
    legend.push(
      `<li data-series="${esc(kind)}"><svg width="10" height="10"><rect width="10" height="10" fill="${color}"/></svg> ${esc(keyName(keyId))} ${esc(kind)}</li>`,
    );
  }
  return `<svg data-testid="chart-svg" role="img" aria-label="verification results per second by key" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>
<ul class="legend" data-testid="chart-legend">${legend.join('') || '<li>no results reported yet</li>'}</ul>`;
}

function gates(s: RotationStatus): string {
  const g = s.gates;
  if (!g) return '';
  const state = (ok: boolean, off: boolean) => (off ? 'off' : ok ? 'passing' : 'holding');
  return `<section data-testid="gates"><h2>Gates before revocation (checked ${esc(g.checkedAt)})</h2><ul>
<li data-gate="pickup" data-state="${state(g.pickup.satisfied, g.pickup.mode !== 'fetch')}">pickup: ${esc(g.pickup.detail)}</li>
<li data-gate="analysis" data-state="${g.analysis.tripped ? 'tripped' : state(true, !g.analysis.enabled)}">${esc(g.analysis.detail)}</li>
</ul></section>`;
}

/** The part of the page the script refreshes. */
export function renderLive(d: PageData): string {
  const s = d.status;
  if (!s) {
    return `<section data-testid="no-rotation"><p>${esc(d.statusError ?? `no rotation of ${d.identity} found`)}</p>
<p>start one with <code>rotor rotate start --identity ${esc(d.identity)} --trigger personnel --reason '…'</code></p></section>`;
  }
  const phase = s.paused ? `${s.phase} — PAUSED` : s.phase;
  const blockers = [...(s.paused ? [`paused: ${s.pauseReason ?? 'no reason given'}`] : []), ...s.blockers];
  return `<section class="head">
<p><span class="big" data-testid="phase" data-phase="${esc(s.phase)}" data-paused="${s.paused}">${esc(phase)}</span>
${s.trigger} rotation of <b>${esc(s.identity)}</b>, started ${esc(s.startedAt)}${s.endedAt ? `, ended ${esc(s.endedAt)}` : ''}</p>
<p>old key <code>${esc(s.oldKeyId ?? '-')}</code><br>new key <code>${esc(s.newKeyId ?? '-')}</code><br>anchor version ${esc(s.anchorVersion ?? '-')}</p>
${s.outcome ? `<p data-testid="outcome">outcome: ${esc(s.outcome)}</p>` : ''}
${d.statusError ? `<p class="warn">${esc(d.statusError)}</p>` : ''}
</section>
<section><h2>What holds the rotation back</h2>
<ul data-testid="blockers">${blockers.length ? blockers.map((b) => `<li>${esc(b)}</li>`).join('') : '<li>nothing</li>'}</ul></section>
<section><h2>Timeline, planned against actual</h2>${timeline(s)}</section>
<section><h2>Progress</h2>
${bar('progress-resign', 're-sign', s.progress.resign.done, s.progress.resign.total)}
${bar('progress-revoke', 'revoke', s.progress.revoke.done, s.progress.revoke.total)}
${s.progress.rollback.total > 0 ? bar('progress-rollback', 'rollback', s.progress.rollback.done, s.progress.rollback.total) : ''}
</section>
${gates(s)}
<section data-testid="adoption"><h2>Verifier adoption</h2>${adoption(s)}</section>
<section data-testid="pickup"><h2>Agent pickup</h2>${pickup(d)}</section>
<section data-testid="chart"><h2>Verification results per second (check-ins, ${d.bucketSeconds} s buckets)</h2>${chartSvg(d)}</section>
<section><h2>Controls</h2><ul data-testid="controls">${controls(s)
    .map((c) => `<li>${esc(c.what)}: <code>${esc(c.command)}</code></li>`)
    .join('')}</ul></section>
<p class="small" data-testid="updated">as of ${esc(d.now.toISOString())}</p>`;
}

export function renderPage(d: PageData): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>rotor: rotation of ${esc(d.identity)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${PAGE_PREFIX}assets/page.css">
<script defer src="${PAGE_PREFIX}assets/page.js"></script>
</head><body>
<h1>rotor — rotation of ${esc(d.identity)}</h1>
<main id="live" data-identity="${esc(d.identity)}">${renderLive(d)}</main>
</body></html>`;
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:70em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:2px 10px;text-align:left}
tr[data-state=done] td:last-child{color:#2a7a2a}tr[data-state=running] td:last-child{color:#b8860b;font-weight:bold}
.big{font-size:1.5em;font-weight:bold;margin-right:.5em}[data-paused=true]{color:#c00}
.bar{display:flex;gap:.6em;align-items:center}.bar .label{width:6em}.bar progress{width:20em}
.legend{list-style:none;padding:0;display:flex;gap:1.5em}.warn{color:#c00}.small{color:#777;font-size:.85em}
code{background:#f4f4f4;padding:1px 4px}`;

// Re-fetches the live part every second; on an error it keeps what it shows and says so.
const JS = `(() => {
  const live = document.getElementById('live');
  if (!live) return;
  const url = location.pathname + '?fragment=live';
  async function tick() {
    try {
      const res = await fetch(url, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      live.innerHTML = await res.text();
      live.dataset.refreshed = String(Date.now());
      document.title = 'rotor: ' + (live.querySelector('[data-testid=phase]')?.textContent ?? '') + ' — ' + live.dataset.identity;
    } catch (err) {
      live.dataset.error = String(err);
    } finally {
      setTimeout(tick, 1000);
    }
  }
  setTimeout(tick, 1000);
})();`;

export async function servePage(
  sources: PageSources,
  req: IncomingMessage,
  res: ServerResponse,
  rest: string,
  query: URLSearchParams,
): Promise<void> {
  const headers = {
    'Cache-Control': 'no-store',
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  };
  if (rest === 'assets/page.css' || rest === 'assets/page.js') {
    const body = rest.endsWith('.css') ? CSS : JS;
    res.writeHead(200, {
      ...headers,
      'Content-Type': rest.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  let identity: string;
  try {
    identity = decodeURIComponent(rest);
  } catch {
    throw new HttpError(400, 'INVALID_REQUEST', 'the identity in the path is not valid percent-encoding');
  }
  if (!IDENTITY_NAME.test(identity)) {
    throw new HttpError(404, 'NOT_FOUND', `no rotation page for ${JSON.stringify(identity.slice(0, 70))}`);
  }
  const data = await loadPageData(sources, identity);
  const body = query.get('fragment') === 'live' ? renderLive(data) : renderPage(data);
  res.writeHead(200, {
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
