/**
 * Issue 12, point 6: the worker and the CLI reach Temporal over TLS, with a client certificate
 * (mTLS), as production frontends require. The run's dev server speaks plaintext, so the test puts
 * a TLS terminator in front of it that demands a client certificate from its own CA: a real TLS
 * and mTLS handshake, certificates made with openssl for this test.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectTemporal } from '../../src/cli/temporal-client';
import { temporalConfig, temporalConnectionOptions } from '../../src/config';

let dir: string;
let proxy: TlsServer;
let proxyAddress: string;
const files = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(prefix: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${prefix} test CA`,
    '-keyout',
    files(`${prefix}-ca.key`),
    '-out',
    files(`${prefix}-ca.pem`),
  );
  for (const [who, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${prefix} ${who}`,
      '-keyout',
      files(`${prefix}-${who}.key`),
      '-out',
      files(`${prefix}-${who}.csr`),
    );
    writeFileSync(files(`${prefix}-${who}.ext`), `${ext}\n`);
    openssl(
      'x509',
      '-req',
      '-in',
      files(`${prefix}-${who}.csr`),
      '-CA',
      files(`${prefix}-ca.pem`),
      '-CAkey',
      files(`${prefix}-ca.key`),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      files(`${prefix}-${who}.ext`),
      '-out',
      files(`${prefix}-${who}.pem`),
    );
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rotor-temporal-tls-'));
  makeCertificates('good');
  makeCertificates('other');
  const [host, port] = inject('temporalAddress').split(':') as [string, string];
  proxy = createTlsServer(
    {
      key: readFileSync(files('good-server.key')),
      cert: readFileSync(files('good-server.pem')),
      ca: readFileSync(files('good-ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (client) => {
      const upstream = tcpConnect(Number(port), host);
      client.pipe(upstream).pipe(client);
      // Either side going away ends the other; the handshake failures are the test's point.
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    },
  );
  // A failed handshake (no or a foreign client certificate) is expected here, not a fault.
  proxy.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyAddress = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const mtlsEnv = (prefix = 'good') => ({
  TEMPORAL_ADDRESS: proxyAddress,
  TEMPORAL_TLS_CA: files('good-ca.pem'),
  TEMPORAL_TLS_CERT: files(`${prefix}-client.pem`),
  TEMPORAL_TLS_KEY: files(`${prefix}-client.key`),
});

describe('Temporal over TLS and mTLS (CLI client and worker connection)', () => {
  it('the CLI client and the worker connection reach Temporal through mTLS', async () => {
    const cli = await connectTemporal(temporalConfig(mtlsEnv()));
    try {
      const ns = await cli.client.workflowService.describeNamespace({ namespace: 'default' });
      expect(ns.namespaceInfo?.name).toBe('default');
    } finally {
      await cli.close();
    }
    const native = await NativeConnection.connect(temporalConnectionOptions(temporalConfig(mtlsEnv())));
    try {
      const ns = await native.workflowService.describeNamespace({ namespace: 'default' });
      expect(ns.namespaceInfo?.name).toBe('default');
    } finally {
      await native.close();
    }
  });

  it('is refused without a client certificate, with one from another CA, or in plaintext', async () => {
    const { TEMPORAL_TLS_CERT: _c, TEMPORAL_TLS_KEY: _k, ...noClientCert } = mtlsEnv();
    await expect(connectTemporal(temporalConfig(noClientCert))).rejects.toThrow(
      /^cannot reach Temporal at 127\.0\.0\.1:\d+ \(/,
    );
    await expect(connectTemporal(temporalConfig(mtlsEnv('other')))).rejects.toThrow(
      /^cannot reach Temporal at/,
    );
    await expect(connectTemporal(temporalConfig({ TEMPORAL_ADDRESS: proxyAddress }))).rejects.toThrow(
      /^cannot reach Temporal at/,
    );
  });

  it('names a bad TLS setting in one line', () => {
    expect(() => temporalConfig({ TEMPORAL_TLS_CERT: files('good-client.pem') })).toThrow(
      'set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (mTLS), or neither',
    );
    expect(() => temporalConfig({ TEMPORAL_TLS_CA: files('nope.pem') })).toThrow(
      /^TEMPORAL_TLS_CA \(.*nope\.pem\) cannot be read \(ENOENT\)$/,
    );
    expect(() => temporalConfig({ TEMPORAL_TLS: 'yes' })).toThrow(
      "TEMPORAL_TLS must be true or false, got 'yes'",
    );
    expect(temporalConfig({ TEMPORAL_API_KEY: 'k' })).toMatchObject({ apiKey: 'k', tls: {} });
    expect(temporalConfig({}).tls).toBeUndefined();
  });
});
