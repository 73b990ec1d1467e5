/**
 * Manifest delivery on the real service and store: credentials (hashed, scoped, revocable), the
 * current manifest per agent before and after its twin's key is released, strong ETags and
 * 304s, pickup records, and the signed, batched, retried outbound webhook.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities';
import type { ActivityDeps } from '../../src/activities/deps';
import { initIdentity } from '../../src/activities/identity';
import type { KeyCustodian } from '../../src/custody/custodian';
import { openSoftwareCustodian } from '../../src/custody/software';
import { createHttpService, type HttpService } from '../../src/http/service';
import { checkWebhookSignature, SIGNATURE_HEADER } from '../../src/http/webhook-signature';
import { parseJson } from '../../src/manifest';
import { isJsonObject } from '../../src/manifest/json';
import {
  authenticateToken,
  createCredential,
  pickupCounts,
  revokeCredential,
  setWebhook,
} from '../../src/store/delivery';
import { registerKey } from '../../src/store/keys';
import { importManifests, pageManifests } from '../../src/store/manifests';
import { syntheticManifests } from '../../src/synthetic/manifests';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

const MAX_AGE = 7;
let db: TestDatabase;
let service: HttpService;
let base: string;
let custodian: KeyCustodian;
let keyDir: string;
let activities: ReturnType<typeof createActivities>;
let oldKeyId: string;
let newKeyId: string;
/** agent_id → its original manifest text. */
const originals = new Map<string, string>();

async function get(agentId: string, token: string | null, headers: Record<string, string> = {}) {
  return fetch(`${base}/v1/agents/${encodeURIComponent(agentId)}/manifest`, {
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
  });
}

function field(text: string, name: string): unknown {
  const root = parseJson(text);
  if (!isJsonObject(root)) throw new Error('not an object');
  return root.get(name);
}

beforeAll(async () => {
  db = await createTestDatabase();
  service = createHttpService({
    pool: db.pool,
    anchorMaxAgeSeconds: 1,
    checkInToken: 't',
    identity: 'default',
    manifestMaxAgeSeconds: MAX_AGE,
  });
  base = `http://127.0.0.1:${(await service.listen(0)).port}`;
  keyDir = mkdtempSync(join(tmpdir(), 'rotor-delivery-'));
  custodian = await openSoftwareCustodian({ dir: keyDir });
  const deps: ActivityDeps = {
    pool: db.pool,
    custodian: async () => custodian,
    settings: { revokedBy: 'urn:test', publicUrl: base },
  };
  activities = createActivities(deps);
  const { key } = await initIdentity(db.pool, custodian, 'default', 'delivery-old');
  oldKeyId = key.keyId;
  const signer = await custodian.signer(key.handle);
  const items: { text: string; source: string }[] = [];
  for await (const text of syntheticManifests(12, signer, { seed: 12 })) {
    items.push({ text, source: `seed:${items.length + 1}` });
    originals.set(field(text, 'agent_id') as string, text);
  }
  expect((await importManifests(db.pool, items)).imported).toBe(12);
  const generated = await custodian.generate('delivery-new');
  newKeyId = generated.keyId;
  await registerKey(db.pool, {
    identity: 'default',
    keyId: generated.keyId,
    publicKey: generated.publicKey,
    custodian: 'software',
    handle: generated.handle,
    state: 'pending',
  });
  // The re-sign step, as the rotation runs it: every original gets a twin signed by the new key.
  const chunk = await activities.resignChunk({
    workflowId: 'rotation/default',
    fromKeyId: oldKeyId,
    toKeyId: newKeyId,
    status: 'active',
    afterManifestId: null,
    limit: 1000,
    batchSize: 100,
    // These checks compare the served bytes with v0.1 texts: the twins stay v0.1 here.
    reissueAs: 'same',
  });
  expect(chunk.resigned).toBe(12);
});

afterAll(async () => {
  await service?.close();
  await custodian?.close();
  await db?.drop();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

describe('credentials', () => {
  it('stores only a hash, authenticates the token, and stops accepting it once revoked', async () => {
    const agent = [...originals.keys()][0]!;
    const { credential, token } = await createCredential(db.pool, { kind: 'agent', agentId: agent });
    const { rows } = await db.pool.query('SELECT * FROM delivery_credentials WHERE credential_id = $1', [
      credential.credentialId,
    ]);
    expect(JSON.stringify(rows)).not.toContain(token.split('_').at(-1));
    expect((await authenticateToken(db.pool, token))?.credentialId).toBe(credential.credentialId);
    // One character off. A 32-byte secret's last base64url character is one of 16, 'A' among them
    // (1 token in 16 ends in it), so the changed character must differ from the one it replaces.
    const last = token.at(-1) === 'A' ? 'E' : 'A';
    expect(await authenticateToken(db.pool, `${token.slice(0, -1)}${last}`)).toBeNull();
    expect((await get(agent, token)).status).toBe(200);
    await revokeCredential(db.pool, credential.credentialId);
    const res = await get(agent, token);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error_code: string }).error_code).toBe('UNAUTHORIZED');
  });

  it('refuses a request without a token, with a malformed one, and for an agent the credential does not cover', async () => {
    const [a, b] = [...originals.keys()];
    const { token } = await createCredential(db.pool, { kind: 'agent', agentId: a! });
    expect((await get(a!, null)).status).toBe(401);
    expect((await get(a!, 'not-a-token')).status).toBe(401);
    const other = await get(b!, token);
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error_message: string }).error_message).toContain(b!);
    expect((await get('bad agent id with spaces', token)).status).toBe(400);
  });

  it('a deployment credential covers its agent_id prefixes only', async () => {
    const agents = [...originals.keys()];
    const prefix = agents[0]!.slice(0, agents[0]!.lastIndexOf('/') + 1);
    const { token } = await createCredential(db.pool, { kind: 'deployment', agentPrefixes: [prefix] });
    expect((await get(agents[1]!, token)).status).toBe(200);
    expect((await get('spiffe://elsewhere.example/agent/x', token)).status).toBe(403);
    await expect(createCredential(db.pool, { kind: 'deployment', agentPrefixes: [] })).rejects.toThrow(
      /--agent-prefix/,
    );
  });
});

describe('the agent’s current manifest, in the safe order', () => {
  let token: string;
  beforeAll(async () => {
    token = (await createCredential(db.pool, { kind: 'deployment', agentPrefixes: ['spiffe://'] })).token;
  });

  it('before its key is released, an agent keeps getting its original (superseded, still valid)', async () => {
    for (const [agent, text] of originals) {
      const res = await get(agent, token);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(text);
      expect(res.headers.get('cache-control')).toBe(`private, max-age=${MAX_AGE}`);
      expect(res.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    }
    expect((await pickupCounts(db.pool, newKeyId)).pickedUp).toBe(0);
  });

  it('after release: the twin, byte for byte as stored; a 304 on its ETag; each fetch recorded as its pickup', async () => {
    const released = await activities.releaseDelivery({
      identity: 'default',
      keyId: newKeyId,
      anchorVersion: 2,
      workflowId: 'rotation/default',
      reason: 'test: adoption gate passed',
    });
    expect(released.twins).toBe(12);
    const twins = await pageManifests(db.pool, { keyId: newKeyId, status: 'active', limit: 100 });
    const [agent] = [...originals.keys()];
    const res = await get(agent!, token);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(twins.map((t) => t.text)).toContain(text);
    expect(field(text, 'agent_id')).toBe(agent);
    expect(field(text, 'previous_manifest_id')).toBe(field(originals.get(agent!)!, 'manifest_id'));
    const etag = res.headers.get('etag')!;
    const again = await get(agent!, token, { 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    const counts = await pickupCounts(db.pool, newKeyId);
    expect(counts).toMatchObject({ twins: 12, pickedUp: 1 });
    const { rows } = await db.pool.query('SELECT fetches FROM manifest_pickups WHERE agent_id = $1', [agent]);
    expect(Number(rows[0].fetches)).toBe(2);
    // An agent seen fetching before the release but not since counts as seen, not as never seen.
    expect(counts.seenNotPickedUp).toBe(11);
    expect(counts.neverSeen).toBe(0);
  });

  it('a withdrawn key’s twins are no longer handed out: agents fall back to their originals', async () => {
    await activities.releaseDelivery({
      identity: 'default',
      keyId: oldKeyId,
      anchorVersion: null,
      workflowId: 'rotation/default',
      reason: 'test rollback',
      withdrawKeyIds: [newKeyId],
    });
    const [agent, text] = [...originals][0]!;
    expect(await (await get(agent, token)).text()).toBe(text);
    // Put back for the webhook test below.
    await activities.releaseDelivery({
      identity: 'default',
      keyId: newKeyId,
      anchorVersion: 2,
      workflowId: 'rotation/default',
      reason: 'test: adoption gate passed',
    });
  });
});

describe('outbound webhook', () => {
  let receiver: Server;
  let url: string;
  const received: { body: string; signature: string | undefined; deliveryId: string | undefined }[] = [];
  let failNext = 0;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (failNext > 0) {
          failNext--;
          res.writeHead(503).end();
          return;
        }
        received.push({
          body: Buffer.concat(chunks).toString('utf8'),
          signature: req.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined,
          deliveryId: req.headers['rotor-delivery-id'] as string | undefined,
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    url = `http://127.0.0.1:${port}/hook`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it('sends every agent with a new manifest in signed batches, retrying a failed POST, once per batch', async () => {
    const secret = 'webhook-secret-for-tests-0123456789';
    await setWebhook(db.pool, { identity: 'default', url, secret, batchSize: 5 });
    await db.pool.query('DELETE FROM delivery_webhook_batches');
    failNext = 1;
    const result = await activities.releaseDelivery({
      identity: 'default',
      keyId: newKeyId,
      anchorVersion: 2,
      workflowId: 'rotation/default',
      reason: 'test: adoption gate passed',
    });
    expect(result.webhook).toEqual({ batches: 3, sent: 3, failed: 0 });
    expect(received).toHaveLength(3);
    const agents = new Set<string>();
    for (const r of received) {
      expect(checkWebhookSignature(secret, r.signature, r.body, Math.floor(Date.now() / 1000))).toBeNull();
      expect(
        checkWebhookSignature('another-secret-0123456789', r.signature, r.body, Date.now() / 1000),
      ).toMatch(/does not match/);
      expect(checkWebhookSignature(secret, r.signature, `${r.body} `, Math.floor(Date.now() / 1000))).toMatch(
        /does not match/,
      );
      const body = JSON.parse(r.body) as {
        type: string;
        key_id: string;
        agents: { agent_id: string; manifest_url: string }[];
      };
      expect(body.type).toBe('manifests.released');
      expect(body.key_id).toBe(newKeyId);
      for (const a of body.agents) {
        agents.add(a.agent_id);
        expect(a.manifest_url).toBe(`${base}/v1/agents/${encodeURIComponent(a.agent_id)}/manifest`);
      }
    }
    expect(agents).toEqual(new Set(originals.keys()));
    const { rows } = await db.pool.query(
      'SELECT batch_no, status, attempts FROM delivery_webhook_batches ORDER BY batch_no',
    );
    expect(rows).toEqual([
      { batch_no: 0, status: 'sent', attempts: 2 },
      { batch_no: 1, status: 'sent', attempts: 1 },
      { batch_no: 2, status: 'sent', attempts: 1 },
    ]);
    // A retried release (the activity ran again) sends nothing twice.
    const again = await activities.releaseDelivery({
      identity: 'default',
      keyId: newKeyId,
      anchorVersion: 2,
      workflowId: 'rotation/default',
      reason: 'test: adoption gate passed',
    });
    expect(again.webhook).toEqual({ batches: 3, sent: 3, failed: 0 });
    expect(received).toHaveLength(3);
  });

  it('a receiver that refuses a batch (4xx) is recorded as failed without retries; the secret never shows', async () => {
    await db.pool.query('DELETE FROM delivery_webhook_batches');
    const refusing = createServer((_req, res) => res.writeHead(400).end());
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    const secret = 'another-webhook-secret-0123456789';
    const lines: string[] = [];
    try {
      await setWebhook(db.pool, {
        identity: 'default',
        url: `http://127.0.0.1:${(refusing.address() as { port: number }).port}/`,
        secret,
        batchSize: 100,
      });
      const acts = createActivities({
        pool: db.pool,
        custodian: async () => custodian,
        settings: { revokedBy: 'urn:test', publicUrl: base },
        log: (l) => lines.push(l),
      });
      const result = await acts.releaseDelivery({
        identity: 'default',
        keyId: newKeyId,
        anchorVersion: 2,
        workflowId: 'rotation/default',
        reason: 'test',
      });
      expect(result.webhook).toEqual({ batches: 1, sent: 0, failed: 1 });
      expect(lines.join('\n')).toMatch(/batch 1 not delivered after 1 attempt\(s\): answered 400/);
      expect(lines.join('\n')).not.toContain(secret);
    } finally {
      await new Promise<void>((r) => refusing.close(() => r()));
    }
  });
});
