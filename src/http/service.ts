/**
 * The HTTP service behind `rotor serve`: the trust anchor and the CRL at their `.well-known`
 * paths, the revocation status of docs/upstream/agent-manifest-spec-v0.2.md §3.7, verifier check-in, `/healthz` and `/metrics`.
 * Tests, the demo and the CLI all run this same function.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RotorLogger } from '../log';
import { crlMetaAt, latestCrlMeta } from '../store/crl-meta';
import { inTransaction, type Pool } from '../store/db';
import { crlHead, getRevocationLine, openCrlSnapshot } from '../store/revocations';
import { rootChainLink } from '../store/trust-anchors';
import { recordResults, verificationTotals } from '../store/verification-results';
import { anchorVersionBySha256, checkVerifierCredential, recordCheckIn } from '../store/verifiers';
import type { RotationStatus } from '../workflows/rotation-api';
import { createAnchorCache } from './anchor-cache';
import { bearerOf, CHECK_IN_BODY_LIMIT, checkSharedToken, parseCheckIn, unauthorized } from './check-in';
import { AGENT_MANIFEST, serveAgentManifest } from './delivery';
import { checkManifestId, manifestIdFromPath, verifierIdFromPath } from './ids';
import { createMetrics } from './metrics';
import {
  badRequest,
  HttpError,
  matchesIfNoneMatch,
  readJsonBody,
  sendCachedBody,
  sendError,
  sendJson,
} from './respond';
import { authorizePage, PAGE_PREFIX, servePage } from './rotation-page';

export interface HttpServiceOptions {
  pool: Pool;
  /** Cache-Control max-age of the trust anchor: how long verifiers may hold it (the rotation waits this out). */
  anchorMaxAgeSeconds: number;
  /**
   * The shared fleet token, accepted for one release from verifiers that are not registered
   * (registered ones present their own credential); without it only registered verifiers check in.
   */
  checkInToken?: string;
  /**
   * The pool CRL streams take their connection from (a stream holds one for its whole length), so
   * slow readers can never starve the anchor, check-ins or health (default: `pool`, for tests).
   */
  crlPool?: Pool;
  /** At most this many CRL streams at once; one more is answered 429 with Retry-After (default 8). */
  maxCrlStreams?: number;
  /**
   * How stale the in-memory anchor may be when a notification is late: older than this, it is
   * checked against the newest version number (default 100 ms; 0 checks on every request).
   */
  anchorRevalidateMs?: number;
  /** A CRL reader that takes nothing for this long is cut off (default 15 s). */
  crlStallSeconds?: number;
  /** Open connections at most (default 1024); the kernel queues the rest. */
  maxConnections?: number;
  /** TLS for the main listener (PEM): ROTOR_HTTP_TLS_CERT / ROTOR_HTTP_TLS_KEY. */
  tls?: { cert: string; key: string };
  /** The signing identity whose trust anchor is served. */
  identity: string;
  /** Cache-Control max-age of the CRL and of single revocation records (the runbook uses 30). */
  crlCacheSeconds?: number;
  /** Cache-Control max-age of an agent's manifest at `/v1/agents/{agent_id}/manifest` (default 60). */
  manifestMaxAgeSeconds?: number;
  /** Width of the time buckets check-in results are counted in (the page's chart, the analysis gate). */
  resultsBucketSeconds?: number;
  /** Token for the live rotation page at /rotations/{identity}; without one the page answers 503. */
  pageToken?: string;
  /** The identity's rotation status (a Temporal query); the page shows the rest without it. */
  rotationStatus?: (identity: string) => Promise<RotationStatus | null>;
  /** Called with one line per unexpected failure (no request bodies, no secrets). */
  log?: (line: string) => void;
  /**
   * The access log: one line per request (method, route template, status, duration, request id),
   * and unexpected failures with their request id. Never a body, a query or a header value.
   */
  logger?: RotorLogger;
}

/** A caller's X-Request-Id when it is a plain token, else a fresh one: it goes into log lines. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export interface HttpService {
  server: Server;
  listen(port: number, host?: string): Promise<{ port: number }>;
  /**
   * `/metrics` on a listener of its own (issue 12 point 5): scrapers reach it, the public side
   * does not (ROTOR_METRICS_HOST/PORT, loopback by default).
   */
  listenMetrics(port: number, host?: string): Promise<{ port: number }>;
  close(): Promise<void>;
}

const ANCHOR_PATH = '/.well-known/agent-manifest/trust-anchor';
const ANCHOR_JWS_PATH = '/.well-known/agent-manifest/trust-anchor.jws';
/** The root chain (README "Following root rotations"): `root/<n>.jws`, the anchor that introduced root set n. */
const ROOT_LINK = /^\/\.well-known\/agent-manifest\/root\/([^/]*)\.jws$/;
/** A link never changes once published, so verifiers and caches may keep it a day. */
const ROOT_LINK_MAX_AGE = 86_400;
const CRL_PATH = '/.well-known/agent-manifest/revocation';
const CRL_ENTRY_PREFIX = `${CRL_PATH}/`;
const CRL_META_PATH = '/.well-known/agent-manifest/revocation.meta.jws';
const CHECK_IN = /^\/v1\/verifiers\/([^/]+)\/check-in$/;

type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => Promise<void>;

interface Route {
  /** The template, used as the metrics label. */
  name: string;
  methods: readonly string[];
  handler: Handler;
}

const READ = ['GET', 'HEAD'] as const;

export function createHttpService(options: HttpServiceOptions): HttpService {
  const { pool, identity } = options;
  const crlCacheSeconds = options.crlCacheSeconds ?? 30;
  const manifestMaxAgeSeconds = options.manifestMaxAgeSeconds ?? 60;
  const resultsBucketSeconds = options.resultsBucketSeconds ?? 5;
  const log = options.log ?? (() => {});
  const crlPool = options.crlPool ?? pool;
  const maxCrlStreams = options.maxCrlStreams ?? 8;
  const crlStallMs = (options.crlStallSeconds ?? 15) * 1000;
  let crlStreams = 0;
  const anchors = createAnchorCache(pool, identity, {
    logger: options.logger,
    ...(options.anchorRevalidateMs === undefined ? {} : { revalidateMs: options.anchorRevalidateMs }),
  });
  const metrics = createMetrics(
    {
      crlRecords: async () => (await crlHead(pool)).served,
      crlHead: async () => (await crlHead(pool)).head,
      anchorVersion: async () => (await anchors.current())?.version ?? null,
      verificationTotals: () => verificationTotals(pool),
    },
    identity,
  );

  const anchor: Handler = async (req, res) => {
    const current = await anchors.current();
    if (!current) {
      throw new HttpError(
        404,
        'TRUST_ANCHOR_NOT_FOUND',
        `no trust anchor is published for identity ${identity}`,
      );
    }
    const headers = {
      ETag: current.etag,
      'Cache-Control': `public, max-age=${options.anchorMaxAgeSeconds}`,
    };
    sendCachedBody(req, res, headers, 'application/json; charset=utf-8', current.text);
  };

  // The same version, signed (issue 12): a JWS in the JSON General Serialization.
  const anchorJws: Handler = async (req, res) => {
    const current = await anchors.current();
    if (!current?.jws || !current.jwsSha256) {
      throw new HttpError(
        404,
        'SIGNED_TRUST_ANCHOR_NOT_FOUND',
        `no signed trust anchor is published for identity ${identity} (rotor anchor root init)`,
      );
    }
    const etag = `"jws-${current.jwsSha256.slice(0, 32)}"`;
    const headers = { ETag: etag, 'Cache-Control': `public, max-age=${options.anchorMaxAgeSeconds}` };
    sendCachedBody(req, res, headers, 'application/jose+json', current.jws);
  };

  // The root chain: links are immutable, so each is read from Postgres once and then held (one per
  // root rotation the identity ever made); a version past the current anchor's root set is a 404
  // without a query, so guessing numbers costs nothing.
  const rootLinks = new Map<number, { jws: string; etag: string }>();
  const rootLink =
    (raw: string): Handler =>
    async (req, res) => {
      if (!/^[1-9][0-9]{0,8}$/.test(raw)) {
        throw new HttpError(400, 'BAD_ROOT_VERSION', 'the root version is a positive whole number');
      }
      const n = Number(raw);
      let link = rootLinks.get(n);
      if (!link) {
        const current = await anchors.current();
        const found =
          current?.rootVersion != null && n <= current.rootVersion
            ? await rootChainLink(pool, identity, n)
            : null;
        if (!found) {
          throw new HttpError(
            404,
            'ROOT_VERSION_NOT_FOUND',
            `identity ${identity} has no signed anchor introducing root set ${n}`,
          );
        }
        link = { jws: found.jws, etag: `"jws-${found.jwsSha256.slice(0, 32)}"` };
        rootLinks.set(n, link);
      }
      const headers = { ETag: link.etag, 'Cache-Control': `public, max-age=${ROOT_LINK_MAX_AGE}` };
      sendCachedBody(req, res, headers, 'application/jose+json', link.jws);
    };

  // The full list (a FileCRL, byte for byte what the SDK reads) or, with `?since=N`, a delta: only
  // the records after sequence number N. Either way CRL-Head names the snapshot's head, which the
  // verifier sends as `since` next time; the ETag is derived from it (README, "CRL deltas").
  const crl: Handler = async (req, res, query) => {
    const since = sinceOf(query);
    // A stream holds a connection of crlPool for its whole length: a cap, and a cut-off for readers
    // that stop reading, keep slow or stalled clients from holding them all (issue 12 point 5).
    if (crlStreams >= maxCrlStreams) {
      throw new HttpError(
        429,
        'TOO_MANY_CRL_STREAMS',
        `${maxCrlStreams} CRL streams are in progress; retry shortly`,
        {
          'Retry-After': '5',
        },
      );
    }
    crlStreams++;
    let snapshot: Awaited<ReturnType<typeof openCrlSnapshot>>;
    try {
      snapshot = await openCrlSnapshot(crlPool);
    } catch (err) {
      crlStreams--;
      throw err;
    }
    try {
      const position = { 'CRL-Head': String(snapshot.head), 'CRL-Horizon': String(snapshot.horizon) };
      if (since !== null && since > snapshot.head) {
        throw new HttpError(
          409,
          'CRL_SINCE_AHEAD',
          `since=${since} is ahead of the CRL head ${snapshot.head}: fetch the full list`,
          position,
        );
      }
      if (since !== null && since < snapshot.horizon) {
        throw new HttpError(
          410,
          'CRL_SINCE_COMPACTED',
          `since=${since} is before the compaction horizon ${snapshot.horizon}: fetch the full list`,
          position,
        );
      }
      const etag = since === null ? `"crl-${snapshot.head}"` : `"crl-${snapshot.head}-since-${since}"`;
      const headers = { ETag: etag, 'Cache-Control': `public, max-age=${crlCacheSeconds}`, ...position };
      if (matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Type': 'application/x-ndjson' });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      for await (const batch of snapshot.batches(since ?? 0)) {
        if (res.destroyed) return;
        if (!res.write(`${batch.join('\n')}\n`) && !(await drained(res, crlStallMs))) {
          // The reader took nothing for crlStallMs: cut it off and give the connection back.
          options.logger?.warn({ stallMs: crlStallMs }, 'CRL reader stalled; connection closed');
          res.destroy();
          return;
        }
      }
      res.end();
    } finally {
      crlStreams--;
      await snapshot.close();
    }
  };

  // The CRL's signed header (issue 12 point 2; README "The CRL's signed header"), signed by the
  // worker with the identity's revocation key (src/activities/crl-meta.ts); serve only hands out
  // what is stored. Pairing: a header names the CRL head (`seq`) of the one body it describes.
  // `?seq=N` answers the header for exactly N (a verifier asks for the CRL-Head of the body it
  // holds) or 404; without it, the newest header, with `CRL-Meta-Seq` (its seq) and `CRL-Head`
  // (the body's head now) beside it, and a Warning when the header is behind the body: a change
  // committed and its header not signed yet. Never a header presented as describing a body it
  // does not.
  const crlMeta: Handler = async (req, res, query) => {
    const seq = seqParamOf(query, 'seq');
    const { head } = await crlHead(pool);
    const meta = seq === null ? await latestCrlMeta(pool, identity) : await crlMetaAt(pool, identity, seq);
    if (!meta) {
      throw new HttpError(
        404,
        'CRL_META_NOT_FOUND',
        seq === null
          ? `no signed CRL header for identity ${identity} yet: the worker signs one when the revocation key is made, after each CRL change, and on anchor upkeep`
          : `no signed CRL header for identity ${identity} at seq ${seq} (the CRL is at ${head}): not signed yet or superseded; fetch the CRL again`,
        { 'CRL-Head': String(head) },
      );
    }
    const etag = `"crlmeta-${meta.seq}-${meta.issuedAt.getTime()}"`;
    const headers: Record<string, string> & { ETag: string } = {
      ETag: etag,
      'Cache-Control': `public, max-age=${crlCacheSeconds}`,
      'CRL-Meta-Seq': String(meta.seq),
      'CRL-Head': String(head),
    };
    if (meta.seq < head) {
      headers.Warning = `299 rotor "this header describes CRL seq ${meta.seq}; the CRL is at ${head} and its header is not signed yet"`;
    }
    sendCachedBody(req, res, headers, 'application/jose+json', meta.jws);
  };

  const revocationRecord = async (res: ServerResponse, manifestId: string, method: string) => {
    const line = await getRevocationLine(pool, manifestId);
    if (line === null) {
      throw new HttpError(404, 'MANIFEST_NOT_FOUND', `manifest_id ${manifestId} has no revocation record`);
    }
    res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(line),
      'Cache-Control': `public, max-age=${crlCacheSeconds}`,
    });
    res.end(method === 'HEAD' ? undefined : line);
  };

  const revocationStatus: Handler = async (req, res, query) => {
    const ids = query.getAll('manifest_id');
    if (ids.length !== 1) throw badRequest('give exactly one manifest_id query parameter');
    await revocationRecord(res, checkManifestId(ids[0]!), req.method!);
  };

  const checkIn = (rawId: string): Handler => {
    return async (req, res) => {
      const verifierId = verifierIdFromPath(rawId);
      const presented = bearerOf(req);
      // A registered verifier presents its own credential, bound to its id and identity
      // (issue 12 point 4): no holder of another credential can speak for it or move it.
      const credential = await checkVerifierCredential(pool, verifierId, presented);
      if (credential.kind === 'refused') throw unauthorized(credential.reason);
      if (credential.kind === 'legacy') {
        checkSharedToken(verifierId, presented, options.checkInToken);
        options.logger?.warn(
          { verifierId, fix: `rotor verifier register ${verifierId} --identity <identity>` },
          'check-in with the shared fleet token',
        );
        res.setHeader(
          'Warning',
          '299 rotor "shared check-in token: register this verifier, the token goes away"',
        );
      }
      const body = await readJsonBody(req, CHECK_IN_BODY_LIMIT);
      const parsed = parseCheckIn(verifierId, body, identity);
      if (credential.kind === 'registered') {
        if (parsed.identityGiven && parsed.identity !== credential.identity) {
          throw new HttpError(
            403,
            'IDENTITY_MISMATCH',
            `verifier ${verifierId} is registered for identity ${credential.identity}, not ${parsed.identity}`,
          );
        }
        parsed.identity = credential.identity;
        if (parsed.anchorSha256 === undefined) {
          throw badRequest(
            'a registered verifier reports anchor_sha256, the SHA-256 of the signed anchor it holds',
          );
        }
      }
      // The version held is what the anchor's hash says, not a number the verifier chose.
      let anchorVersion = parsed.anchorVersion;
      if (parsed.anchorSha256 !== undefined) {
        const byHash = await anchorVersionBySha256(pool, parsed.identity, parsed.anchorSha256);
        if (byHash === null) {
          throw badRequest(
            `anchor_sha256 ${parsed.anchorSha256.slice(0, 16)}… names no anchor of identity ${parsed.identity}`,
          );
        }
        if (anchorVersion !== undefined && anchorVersion !== byHash) {
          throw badRequest(
            `anchor_version ${anchorVersion} does not match anchor_sha256 (version ${byHash})`,
          );
        }
        anchorVersion = byHash;
      }
      const input = { ...parsed, anchorVersion: anchorVersion! };
      await inTransaction(pool, async (client) => {
        // The increase over the last report is computed before the check-in overwrites it.
        await recordResults(client, {
          verifierId,
          identity: input.identity,
          validCounts: input.validCounts,
          rejectionCounts: input.rejectionCounts,
          bucketSeconds: resultsBucketSeconds,
        });
        await recordCheckIn(client, input);
      });
      sendJson(res, 200, { verifier_id: verifierId, recorded: true });
    };
  };

  const healthz: Handler = async (_req, res) => {
    try {
      await pool.query('SELECT 1');
    } catch {
      throw new HttpError(503, 'DATABASE_UNAVAILABLE', 'Postgres is not reachable');
    }
    sendJson(res, 200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
  };

  const metricsRoute: Handler = async (req, res) => {
    const text = await metrics.registry.metrics();
    res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  };

  function route(path: string): Route | null {
    if (path === ANCHOR_PATH) return { name: ANCHOR_PATH, methods: READ, handler: anchor };
    if (path === ANCHOR_JWS_PATH) return { name: ANCHOR_JWS_PATH, methods: READ, handler: anchorJws };
    const link = ROOT_LINK.exec(path);
    if (link) {
      return { name: '/.well-known/agent-manifest/root/{n}.jws', methods: READ, handler: rootLink(link[1]!) };
    }
    if (path === CRL_PATH) return { name: CRL_PATH, methods: READ, handler: crl };
    if (path === CRL_META_PATH) return { name: CRL_META_PATH, methods: READ, handler: crlMeta };
    if (path.startsWith(CRL_ENTRY_PREFIX)) {
      const raw = path.slice(CRL_ENTRY_PREFIX.length);
      return {
        name: `${CRL_PATH}/{manifest_id}`,
        methods: READ,
        handler: (req, res) => revocationRecord(res, manifestIdFromPath(raw), req.method!),
      };
    }
    if (path === '/revocation-status') return { name: path, methods: READ, handler: revocationStatus };
    const m = CHECK_IN.exec(path);
    if (m) return { name: '/v1/verifiers/{id}/check-in', methods: ['POST'], handler: checkIn(m[1]!) };
    const agent = AGENT_MANIFEST.exec(path);
    if (agent) {
      return {
        name: '/v1/agents/{agent_id}/manifest',
        methods: READ,
        handler: (req, res) => serveAgentManifest(pool, req, res, agent[1]!, manifestMaxAgeSeconds),
      };
    }
    if (path.startsWith(PAGE_PREFIX)) {
      const rest = path.slice(PAGE_PREFIX.length);
      return {
        name: rest.startsWith('assets/') ? `${PAGE_PREFIX}assets` : `${PAGE_PREFIX}{identity}`,
        methods: READ,
        handler: async (req, res, query) => {
          authorizePage(req, options.pageToken);
          await servePage(
            {
              pool,
              rotationStatus: options.rotationStatus,
              bucketSeconds: resultsBucketSeconds,
              manifestMaxAgeSeconds,
            },
            req,
            res,
            rest,
            query,
          );
        },
      };
    }
    if (path === '/healthz') return { name: path, methods: READ, handler: healthz };
    return null;
  }

  function metricsRouteOf(path: string): Route | null {
    if (path === '/metrics') return { name: path, methods: READ, handler: metricsRoute };
    if (path === '/healthz') return { name: path, methods: READ, handler: healthz };
    return null;
  }

  async function run(found: Route | null, req: IncomingMessage, res: ServerResponse, query: string) {
    if (!found) throw new HttpError(404, 'NOT_FOUND', 'no such endpoint');
    if (!found.methods.includes(req.method ?? '')) {
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${found.methods.join(' or ')}`, {
        Allow: found.methods.join(', '),
      });
    }
    await found.handler(req, res, new URLSearchParams(query));
  }

  const handle = (routeOf: (path: string) => Route | null) => (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const found = routeOf(path);
    const requestId = requestIdOf(req);
    res.setHeader('X-Request-Id', requestId);
    // 'close' rather than 'finish': a stream cut short still counts.
    res.on('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(found?.name ?? 'unmatched', req.method ?? '', res.statusCode, seconds);
      options.logger?.info(
        {
          requestId,
          method: req.method,
          route: found?.name ?? 'unmatched',
          status: res.statusCode,
          durationMs: Math.round(seconds * 1e4) / 10,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    run(found, req, res, q === -1 ? '' : url.slice(q + 1)).catch((err: unknown) => {
      if (!(err instanceof HttpError)) {
        const message = err instanceof Error ? err.message : String(err);
        options.logger?.error(
          { requestId, method: req.method, route: found?.name, error: message },
          'request failed',
        );
        log(`${req.method} ${path}: ${message}`);
        err = new HttpError(500, 'INTERNAL_ERROR', 'the request failed inside the service');
      }
      sendError(res, err as HttpError);
    });
  };
  const server: Server = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, handle(route))
    : createServer(handle(route));
  // Slowloris and idle sockets: a request's headers within 10 s, its whole body within 30 s, an
  // idle keep-alive socket closed after 5 s; at most maxConnections open at once. A CRL stream
  // outlasts requestTimeout legitimately; its own guard is the stall cut-off above.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = options.maxConnections ?? 1024;
  const metricsServer = createServer(handle(metricsRouteOf));
  metricsServer.headersTimeout = 10_000;
  metricsServer.requestTimeout = 30_000;

  const listenOn = (srv: Server, port: number, host: string) =>
    new Promise<{ port: number }>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        resolve({ port: (srv.address() as AddressInfo).port });
      });
    });
  const closeServer = (srv: Server) =>
    new Promise<void>((resolve) => {
      if (!srv.listening) return resolve();
      srv.close(() => resolve());
      srv.closeAllConnections();
    });

  return {
    server,
    listen: (port, host = '127.0.0.1') => listenOn(server, port, host),
    listenMetrics: (port, host = '127.0.0.1') => listenOn(metricsServer, port, host),
    async close() {
      await Promise.all([closeServer(server), closeServer(metricsServer)]);
      await anchors.close();
    },
  };
}

/** `?since=N`: absent (the full list), or one sequence number; anything else is a 400. */
function sinceOf(query: URLSearchParams): number | null {
  return seqParamOf(query, 'since');
}

/** A CRL sequence number query parameter: absent (null), or one whole number; else a 400. */
function seqParamOf(query: URLSearchParams, name: string): number | null {
  const given = query.getAll(name);
  if (given.length === 0) return null;
  if (given.length > 1) throw badRequest(`give at most one ${name} query parameter`);
  const text = given[0]!;
  const n = Number(text);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text) || !Number.isSafeInteger(n)) {
    throw badRequest(
      `${name} must be a CRL sequence number (a whole number from 0, as sent in CRL-Head), got ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  return n;
}

/** True once `res` drained (or closed); false when it took nothing for `stallMs`. */
function drained(res: ServerResponse, stallMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onDrain);
      resolve(ok);
    };
    const onDrain = done(true);
    const timer = setTimeout(done(false), stallMs);
    res.on('drain', onDrain);
    res.on('close', onDrain);
  });
}
