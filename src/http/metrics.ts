/**
 * Prometheus metrics for one service instance, on a registry of its own (several services in one
 * process, as in tests, must not share counters).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface ServiceMetrics {
  registry: Registry;
  observe(route: string, method: string, status: number, seconds: number): void;
}

export interface MetricSources {
  crlRecords(): Promise<number>;
  /** The CRL's head sequence number (what a verifier sends as `since`). */
  crlHead?(): Promise<number>;
  anchorVersion(): Promise<number | null>;
  /** Verification results verifiers reported at check-in, summed over all check-ins. */
  verificationTotals?(): Promise<{ identity: string; keyId: string; outcome: string; count: number }[]>;
}

export function createMetrics(sources: MetricSources, identity: string): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'rotor_' });
  const requests = new Counter({
    name: 'rotor_http_requests_total',
    help: 'HTTP requests answered, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'rotor_http_request_duration_seconds',
    help: 'Time from request to the last byte written, by route template and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'rotor_crl_records',
    help: 'Revocation records in the published CRL (compacted records, kept in the archive, not counted)',
    registers: [registry],
    async collect() {
      // A scrape during a database outage shows NaN here rather than failing as a whole.
      this.set(await sources.crlRecords().catch(() => Number.NaN));
    },
  });
  new Gauge({
    name: 'rotor_crl_head',
    help: 'Head sequence number of the CRL (CRL-Head): moves with every append and compaction',
    registers: [registry],
    async collect() {
      // A scrape during a database outage shows NaN here rather than failing as a whole.
      this.set((await sources.crlHead?.().catch(() => Number.NaN)) ?? Number.NaN);
    },
  });
  new Gauge({
    name: 'rotor_trust_anchor_version',
    help: 'Version of the trust anchor currently served (0 when none is published)',
    labelNames: ['identity'] as const,
    registers: [registry],
    async collect() {
      // A scrape during a database outage shows NaN rather than failing as a whole.
      const version = await sources.anchorVersion().catch(() => Number.NaN);
      this.set({ identity }, version ?? 0);
    },
  });
  new Counter({
    name: 'rotor_verifier_results_total',
    help:
      'Verification results reported by verifiers at check-in, by identity, key_id and outcome ' +
      '(VALID, or the rejection reason: unknown_key, bad_signature, revoked, expired, malformed, no_anchor, other)',
    labelNames: ['identity', 'key_id', 'outcome'] as const,
    registers: [registry],
    async collect() {
      if (!sources.verificationTotals) return;
      // The totals live in Postgres (every rotor serve replica adds to them); each scrape reads them.
      const rows = await sources.verificationTotals().catch(() => null);
      if (rows === null) return;
      this.reset();
      for (const r of rows) this.inc({ identity: r.identity, key_id: r.keyId, outcome: r.outcome }, r.count);
    },
  });
  return {
    registry,
    observe(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      latency.observe({ route, method }, seconds);
    },
  };
}
