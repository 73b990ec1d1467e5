/**
 * `rotor serve`: the HTTP service (trust anchor, CRL, revocation status, verifier check-in,
 * /healthz, /metrics). With --crl-file it also writes the CRL, byte for byte as served, to a file
 * for a static host (S3, a CDN origin), atomically (temp file + rename).
 *
 * Environment:
 *   DATABASE_URL          Postgres (default postgres://postgres@127.0.0.1:5432/postgres)
 *   ROTOR_HTTP_HOST       address to bind (default 127.0.0.1)
 *   ROTOR_HTTP_PORT       port to bind (default 8080; 0 picks a free one, printed on stdout)
 *   ROTOR_ANCHOR_MAX_AGE  seconds verifiers may cache the trust anchor: its Cache-Control max-age,
 *                         and the wait a rotation sits out after publishing (default 300)
 *   ROTOR_CRL_MAX_AGE     seconds verifiers may cache the CRL and single records (default 30)
 *   ROTOR_CHECKIN_TOKEN   shared fleet token, for unregistered verifiers only (one release; warns)
 *   ROTOR_METRICS_HOST, ROTOR_METRICS_PORT  /metrics on a listener of its own (127.0.0.1:9464)
 *   ROTOR_HTTP_TLS_CERT, ROTOR_HTTP_TLS_KEY  PEM files: serve HTTPS instead of HTTP
 *   ROTOR_CRL_MAX_STREAMS CRL streams at once (default 8; more get 429), each on its own connection
 *   ROTOR_CRL_STALL_SECONDS  a CRL reader taking nothing this long is cut off (default 15)
 *   ROTOR_IDENTITY        signing identity whose trust anchor is served (default 'default')
 *   ROTOR_PAGE_TOKEN      token of the live rotation page at /rotations/{identity} (Bearer, or HTTP
 *                         Basic with the token as password); unset: the page answers 503
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE  where the page reads rotation status from (a query)
 *   ROTOR_RESULTS_BUCKET_SECONDS  width of the time buckets check-in results are counted in (default 5)
 *   ROTOR_MANIFEST_MAX_AGE  seconds agents may cache their manifest from /v1/agents/{id}/manifest
 *                         (default 60); the pickup gate waits at least this long for agents
 */

import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import type { RotorConfig, TemporalConfig } from '../../config';
import { UsageError } from '../../errors';
import { createHttpService } from '../../http/service';
import { cliLogger } from '../../log';
import { needingWorker } from '../../rotation/temporal';
import { connect, type Pool } from '../../store/db';
import { type CrlHeaderFile, crlHeaderPath, publishCrlToFile } from '../../store/revocations';
import { type RotationStatus, rotationWorkflowId, statusQuery } from '../../workflows/rotation-api';
import { type CliTemporal, connectTemporal } from '../temporal-client';

const CRL_FILE_INTERVAL_SECONDS = 30;

/**
 * The rotation page's status source: a query of `rotation/{identity}` over one Temporal connection
 * made on first use (rotor serve starts and serves the anchor even while Temporal is away).
 */
export function lazyTemporalStatus(temporalConfig: () => TemporalConfig): {
  status: (identity: string) => Promise<RotationStatus | null>;
  close: () => Promise<void>;
} {
  let connecting: Promise<CliTemporal> | undefined;
  return {
    async status(identity) {
      connecting ??= connectTemporal(temporalConfig()).catch((err: unknown) => {
        connecting = undefined;
        throw err;
      });
      const t = await connecting;
      try {
        return await needingWorker(t, 'the status query', 5, () =>
          t.client.workflow.getHandle(rotationWorkflowId(identity)).query(statusQuery),
        );
      } catch (err) {
        if (
          err instanceof WorkflowNotFoundError ||
          (err as { name?: string }).name === 'WorkflowNotFoundError'
        )
          return null;
        throw err;
      }
    },
    async close() {
      // A connection that never opened has nothing to close; its error went to the request that asked.
      if (connecting) await (await connecting.catch(() => undefined))?.close();
    },
  };
}

async function publishCrl(pool: Pool, file: string, identity: string): Promise<void> {
  const result = await publishCrlToFile(pool, file, { identity });
  process.stderr.write(
    `rotor serve: wrote ${result.records} revocation records to ${file}${headerNote(result.header, file, identity, result.head)}\n`,
  );
}

/** What happened to the signed header beside the file, in words (README "The CRL's signed header"). */
function headerNote(header: CrlHeaderFile | undefined, file: string, identity: string, head: number): string {
  switch (header) {
    case 'written':
      return ` and ${identity}'s signed header (seq ${head}) to ${crlHeaderPath(file)}`;
    case 'behind':
      return `; ${identity}'s header for seq ${head} is not signed yet, so ${crlHeaderPath(file)} was left as it was (the worker signs it)`;
    default:
      return `; ${identity} has no signed CRL header (no revocation key)`;
  }
}

export function registerServeCommands(program: Command, config: RotorConfig): void {
  program
    .command('serve')
    .description(
      'serve the trust anchor, the CRL and verifier check-in over HTTP (see ROTOR_HTTP_* settings)',
    )
    .option(
      '--crl-file <path>',
      `also write the CRL to PATH (atomically) for a static host, every ${CRL_FILE_INTERVAL_SECONDS} s`,
    )
    .option('--crl-file-only', 'write the CRL to --crl-file once and exit, without serving HTTP')
    .action(async (opts: { crlFile?: string; crlFileOnly?: boolean }) => {
      if (opts.crlFileOnly && !opts.crlFile) throw new UsageError('--crl-file-only needs --crl-file PATH');
      // The service's settings are parsed before anything starts: a bad value stops it here.
      const settings = config.serve;
      const logger = cliLogger(config.logLevel, { component: 'serve' });
      const pool = await connect(config.databaseUrl);
      if (opts.crlFile && opts.crlFileOnly) {
        try {
          const result = await publishCrlToFile(pool, opts.crlFile, { identity: settings.identity });
          process.stdout.write(
            `${JSON.stringify({
              file: opts.crlFile,
              records: result.records,
              bytes: result.bytes,
              head: result.head,
              header: result.header,
              header_file: crlHeaderPath(opts.crlFile),
            })}\n`,
          );
        } finally {
          await pool.end();
        }
        return;
      }
      const temporal = lazyTemporalStatus(() => config.temporal);
      // CRL streams get a pool of their own, one connection per allowed stream.
      const crlPool = await connect(config.databaseUrl, settings.maxCrlStreams);
      const service = createHttpService({
        pool,
        crlPool,
        maxCrlStreams: settings.maxCrlStreams,
        crlStallSeconds: settings.crlStallSeconds,
        tls: settings.tls,
        anchorMaxAgeSeconds: settings.anchorMaxAgeSeconds,
        checkInToken: settings.checkInToken,
        identity: settings.identity,
        manifestMaxAgeSeconds: settings.manifestMaxAgeSeconds,
        crlCacheSeconds: settings.crlCacheSeconds,
        pageToken: settings.pageToken,
        resultsBucketSeconds: settings.resultsBucketSeconds,
        rotationStatus: settings.pageToken ? temporal.status : undefined,
        // Failures go to the access logger (with their request id); no second line for them.
        logger,
      });
      let port: number;
      let metricsPort: number;
      try {
        ({ port } = await service.listen(settings.port, settings.host));
        ({ port: metricsPort } = await service.listenMetrics(settings.metricsPort, settings.metricsHost));
      } catch (err) {
        await service.close();
        await crlPool.end();
        await pool.end();
        throw new UsageError(`cannot listen: ${(err as Error).message}`);
      }
      const hostOf = (h: string) => (h.includes(':') ? `[${h}]` : h);
      const url = `${settings.tls ? 'https' : 'http'}://${hostOf(settings.host)}:${port}`;
      const metricsUrl = `http://${hostOf(settings.metricsHost)}:${metricsPort}/metrics`;
      process.stdout.write(
        `${JSON.stringify({ listening: url, metrics: metricsUrl, identity: settings.identity })}\n`,
      );
      if (settings.checkInToken)
        process.stderr.write(
          'rotor serve: ROTOR_CHECKIN_TOKEN is set: unregistered verifiers may check in with it this release (each logs a warning); register them with rotor verifier register\n',
        );
      let timer: NodeJS.Timeout | undefined;
      if (opts.crlFile) {
        const file = opts.crlFile;
        const tick = () =>
          publishCrl(pool, file, settings.identity).catch((err: unknown) => {
            process.stderr.write(`rotor serve: ${(err as Error).message}\n`);
          });
        await tick();
        timer = setInterval(tick, CRL_FILE_INTERVAL_SECONDS * 1000);
      }
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      clearInterval(timer);
      await service.close();
      await temporal.close();
      await crlPool.end();
      await pool.end();
    });
}
