/**
 * The Temporal client the CLI's command groups share, configured by the `temporal` section of
 * src/config.ts (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ROTOR_TASK_QUEUE; TLS, mTLS and an API
 * key). The connection is closed when the command ends, so the process can exit on its own. What the CLI does with it is in src/rotation/
 * (`RotationTemporal` is the part of this connection the rotation layer uses).
 */
import { Client, Connection } from '@temporalio/client';
import { type TemporalConfig, temporalConnectionOptions } from '../config';
import { EnvironmentError, errorMessage } from '../errors';

export interface CliTemporal {
  client: Client;
  config: TemporalConfig;
  close(): Promise<void>;
}

/** `config`: the configuration's `temporal` section (src/config.ts). */
export async function connectTemporal(config: TemporalConfig): Promise<CliTemporal> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: '5s' });
  } catch (err) {
    throw new EnvironmentError(
      `cannot reach Temporal at ${config.address} (${firstLine(errorMessage(err))}): start it (rotor temporal dev-server) or set TEMPORAL_ADDRESS`,
      'ENV_TEMPORAL_UNREACHABLE',
    );
  }
  const client = new Client({ connection, namespace: config.namespace });
  return { client, config, close: () => connection.close() };
}

export async function withTemporal<T>(
  config: TemporalConfig,
  fn: (t: CliTemporal) => Promise<T>,
): Promise<T> {
  const temporal = await connectTemporal(config);
  try {
    return await fn(temporal);
  } finally {
    await temporal.close();
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
