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
  anchorVersion(): Promise<number | null>;
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
    help: 'Revocation records in the published CRL',
    registers: [registry],
    async collect() {
      // A scrape during a database outage shows NaN here rather than failing as a whole.
      this.set(await sources.crlRecords().catch(() => Number.NaN));
    },
  });
  new Gauge({
    name: 'rotor_trust_anchor_version',
    help: 'Version of the trust anchor currently served (0 when none is published)',
    labelNames: ['identity'] as const,
    registers: [registry],
    async collect() {
      const version = await sources.anchorVersion().catch(() => Number.NaN);
      this.set({ identity }, version ?? 0);
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
