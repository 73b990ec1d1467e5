/**
 * The served trust anchor held in memory (issue 12 point 5): an anchor request costs no database
 * round trip. A new version reaches the cache through Postgres LISTEN/NOTIFY (migration 030's
 * trigger on `trust_anchors` notifies `rotor_trust_anchor` with the identity); while the listening
 * connection is down, the cache is read again at most every `fallbackSeconds`, and the listener is
 * re-established on the next request after a back-off.
 */
import type { PoolClient } from 'pg';
import type { RotorLogger } from '../log';
import type { Pool } from '../store/db';
import { currentTrustAnchorServed, type ServedTrustAnchor } from '../store/trust-anchors';

const CHANNEL = 'rotor_trust_anchor';

export interface AnchorCache {
  current(): Promise<ServedTrustAnchor | null>;
  close(): Promise<void>;
}

export function createAnchorCache(
  pool: Pool,
  identity: string,
  options: { fallbackSeconds?: number; logger?: RotorLogger } = {},
): AnchorCache {
  const fallbackMs = (options.fallbackSeconds ?? 1) * 1000;
  let cached: { value: ServedTrustAnchor | null; at: number } | null = null;
  let loading: Promise<ServedTrustAnchor | null> | null = null;
  let listener: PoolClient | null = null;
  let listening: Promise<void> | null = null;
  let retryAt = 0;
  let closed = false;
  // Bumped by every notification: a load that started before one must not be cached as current.
  let generation = 0;

  const invalidate = () => {
    generation++;
    cached = null;
  };

  const listen = async () => {
    const client = await pool.connect();
    const dropped = (err?: Error) => {
      if (listener !== client) return;
      listener = null;
      invalidate();
      retryAt = Date.now() + 1000;
      options.logger?.warn(
        { error: err?.message ?? 'closed' },
        'trust anchor listener lost; reading on demand',
      );
      client.release(err ?? true);
    };
    client.on('error', dropped);
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload === identity) invalidate();
    });
    try {
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    }
    if (closed) {
      client.release();
      return;
    }
    listener = client;
    // Anything published before LISTEN took effect is picked up by this first read.
    invalidate();
  };

  const ensureListening = () => {
    if (listener || listening || closed || Date.now() < retryAt) return;
    listening = listen()
      .catch((err: unknown) => {
        retryAt = Date.now() + 1000;
        options.logger?.warn(
          { error: err instanceof Error ? err.message : String(err) },
          'trust anchor listener not established; reading on demand',
        );
      })
      .finally(() => {
        listening = null;
      });
  };

  return {
    async current() {
      ensureListening();
      if (listening) await listening;
      const fresh = cached && (listener !== null || Date.now() - cached.at < fallbackMs);
      if (fresh) return cached!.value;
      if (!loading) {
        const startedAt = generation;
        loading = currentTrustAnchorServed(pool, identity)
          .then((value) => {
            if (generation === startedAt) cached = { value, at: Date.now() };
            return value;
          })
          .finally(() => {
            loading = null;
          });
      }
      return loading;
    },
    async close() {
      closed = true;
      if (listening) await listening;
      const client = listener;
      listener = null;
      if (client) {
        // Closing: a connection that cannot UNLISTEN is released all the same, and the
        // session's LISTEN ends with it.
        await client.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
        client.release();
      }
    },
  };
}
