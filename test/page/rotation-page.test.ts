/**
 * The live rotation page in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core, which never downloads a browser), during a real rotation: Temporal, Postgres,
 * `rotor serve`, a reference verifier and agents fetching their manifests. Asserts what a person
 * sees at each phase, and that the page follows the rotation by itself (its script), without a
 * reload. One screenshot per phase goes to test-output/rotation-page/ (gitignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpService, type HttpService } from '../../src/http/service';
import { createCredential } from '../../src/store/delivery';
import { pageManifests } from '../../src/store/manifests';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { type RotationStatus, rotationWorkflowId, statusQuery } from '../../src/workflows/rotation-api';
import { CHECKIN_TOKEN, createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const IDENTITY = 'page-demo';

const CHROMIUM = process.env.ROTOR_CHROMIUM ?? '/usr/bin/chromium';
const PAGE_TOKEN = 'page-token-for-tests';
const SHOTS = join(process.cwd(), 'test-output', 'rotation-page');

let env: RotationEnv;
let service: HttpService;
let base: string;
let browser: Browser;
let page: Page;
let verifier: ReferenceVerifier | undefined;
let verifierLoop: Promise<void> | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's chromium (bash .ci/run does) or set ROTOR_CHROMIUM`,
    );
  }
  env = await createRotationEnv('software', { identity: IDENTITY });
  service = createHttpService({
    // Each step publishes an anchor and reads it back at once: no staleness window.
    anchorRevalidateMs: 0,
    pool: env.db.pool,
    anchorMaxAgeSeconds: 1,
    checkInToken: CHECKIN_TOKEN,
    identity: IDENTITY,
    manifestMaxAgeSeconds: 1,
    resultsBucketSeconds: 1,
    pageToken: PAGE_TOKEN,
    rotationStatus: async (identity) => {
      try {
        return await env.temporal.client.workflow
          .getHandle(rotationWorkflowId(identity))
          .query<RotationStatus>(statusQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    },
  });
  base = `http://127.0.0.1:${(await service.listen(0)).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({
    httpCredentials: { username: 'oncall', password: PAGE_TOKEN },
    viewport: { width: 1100, height: 1400 },
  });
  page = await context.newPage();
  mkdirSync(SHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await verifier?.stop();
  await verifierLoop;
  await browser?.close();
  await service?.close();
  await env?.close();
});

// biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the text as rendered (what the operator reads), not the DOM property
const text = async (testId: string) => (await page.getByTestId(testId).innerText()).trim();

/** Waits until the page (its DOM, as its own script updates it) shows the phase. */
async function waitForPhase(phase: string, timeout: number) {
  await expect
    .poll(() => page.getByTestId('phase').getAttribute('data-phase'), { timeout, interval: 200 })
    .toBe(phase);
}

async function shot(name: string) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe('rotation page: access', () => {
  it('answers 401 with a Basic challenge without the token or with a wrong one, 503 where no token is configured', async () => {
    const none = await fetch(`${base}/rotations/${IDENTITY}`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await fetch(`${base}/rotations/${IDENTITY}`, {
      headers: { Authorization: `Basic ${Buffer.from('oncall:nope').toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
    const bearer = await fetch(`${base}/rotations/${IDENTITY}`, {
      headers: { Authorization: `Bearer ${PAGE_TOKEN}` },
    });
    expect(bearer.status).toBe(200);
    expect(bearer.headers.get('content-security-policy')).toContain("script-src 'self'");
    const disabled = await fetch(`${env.baseUrl}/rotations/${IDENTITY}`, {
      headers: { Authorization: `Bearer ${PAGE_TOKEN}` },
    });
    expect(disabled.status).toBe(503);
  });
});

describe('rotation page: a personnel rotation watched in Chromium', () => {
  it('shows each phase as it happens, with adoption, pickup, the results chart, blockers and the commands', async () => {
    const signer = await env.initIdentity(IDENTITY);
    await env.seed(IDENTITY, signer, 40);
    const originals = await pageManifests(env.db.pool, { status: 'active', limit: 100 });
    const agents = originals
      .slice(0, 6)
      .map((m) => (JSON.parse(m.text ?? '') as { agent_id: string }).agent_id);
    const { token } = await createCredential(env.db.pool, {
      kind: 'deployment',
      agentPrefixes: ['spiffe://'],
    });
    const fetchAgent = async (agentId: string) => {
      const res = await fetch(`${base}/v1/agents/${encodeURIComponent(agentId)}/manifest`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      return res.text();
    };

    // Before any rotation.
    const first = await page.goto(`${base}/rotations/${IDENTITY}`);
    expect(first?.status(), await first?.text()).toBe(200);
    expect(await text('no-rotation')).toContain(`no rotation of ${IDENTITY}`);
    await shot('0-no-rotation');

    // A live verifier on anchor v1 holds the adoption gate.
    verifier = new ReferenceVerifier({
      id: 'sidecar-page',
      baseUrl: base,
      checkInToken: CHECKIN_TOKEN,
      root: await env.rootOf(IDENTITY),
    });
    await verifier.refresh();
    await verifier.checkIn();
    const handle = await env.start(IDENTITY, 'personnel', {
      adoptBySeconds: 40,
      revokeAtSeconds: 40,
      decommissionAtSeconds: 42,
    });
    await env.waitForStatus(handle, 'the adoption gate holding', (s) =>
      s.blockers.some((b) => b.includes('sidecar-page')),
    );
    // The page follows by itself: no reload from here on.
    await waitForPhase('await-adoption', 15_000);
    await expect.poll(() => text('blockers'), { timeout: 5_000 }).toContain('sidecar-page');
    expect(await text('adoption-summary')).toMatch(/^0 of 1 live verifier\(s\) hold anchor version 2$/);
    expect(await text('pickup-summary')).toMatch(/^held: agents keep their original manifests/);
    expect(await text('progress-resign')).toContain('40/40 (100%)');
    expect(await text('controls')).toContain(`rotor rotate rollback ${IDENTITY} --reason '…'`);
    expect(
      await page.locator('[data-testid=timeline] tr[data-step=re-sign]').getAttribute('data-state'),
    ).toBe('done');
    expect(
      await page.locator('[data-testid=timeline] tr[data-step=await-adoption]').getAttribute('data-state'),
    ).toBe('running');
    await shot('1-await-adoption-held');

    // The verifier adopts; agents fetch their manifests and present them to it.
    verifierLoop = verifier.runLoop({
      intervalMs: 200,
      manifests: () => Promise.all(agents.map(fetchAgent)),
    });
    // Released: the gates before revocation watch verifiers' rejections, then the agents' pickup.
    await waitForPhase('pre-revocation', 30_000);
    await expect.poll(() => text('pickup-counts'), { timeout: 10_000 }).toMatch(/^6 picked up/);
    expect(await text('adoption-summary')).toBe('1 of 1 live verifier(s) hold anchor version 2');
    expect(await text('pickup-summary')).toMatch(
      /^released for delivery at .* \(verifiers adopted anchor v2\)$/,
    );
    // The gates' text is the workflow's last check, which can be a poll behind the live counts.
    await expect
      .poll(() => text('gates'), { timeout: 10_000 })
      .toMatch(/pickup: 6 of 40 agent\(s\) picked up/);
    // The chart: VALID results of the old key, then of the new key, the phase starts marked.
    await expect
      .poll(() => page.locator('[data-testid=chart-svg] polyline[data-kind=VALID]').count(), {
        timeout: 10_000,
      })
      .toBeGreaterThanOrEqual(2);
    const status = await handle.query<RotationStatus>('status');
    const validKeys = await page
      .locator('[data-testid=chart-svg] polyline[data-kind=VALID]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-key')));
    expect(new Set(validKeys)).toEqual(new Set([status.oldKeyId, status.newKeyId]));
    expect(
      await page
        .locator('[data-testid=chart-svg] line.phase')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-phase'))),
    ).toEqual(expect.arrayContaining(['keygen', 're-sign', 'publish-anchor', 'await-adoption']));
    expect(await text('chart-legend')).toContain(`new key ${status.newKeyId!.slice(0, 12)}… VALID`);
    expect(await page.locator('[data-testid=chart-svg] polyline[data-kind=rejected]').count()).toBe(0);
    await shot('2-released-waiting-for-revocation');

    // Revocation and decommission; the rotation completes.
    await waitForPhase('completed', 60_000);
    expect(await text('progress-revoke')).toContain('40/40 (100%)');
    expect(await text('outcome')).toMatch(/^outcome: rotated /);
    expect(await text('controls')).not.toContain('rollback');
    expect(await text('controls')).toContain(`rotor rotate start --identity ${IDENTITY}`);
    expect(await text('blockers')).toBe('nothing');
    expect(
      await page.locator('[data-testid=timeline] tr[data-step=decommission]').getAttribute('data-state'),
    ).toBe('done');
    await shot('3-completed');
    expect((await env.finish(handle)).phase).toBe('completed');
  }, 180_000);
});
