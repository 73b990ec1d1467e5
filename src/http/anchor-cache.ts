/**
 * The served trust anchor held in memory (issue 12 point 5): an anchor request costs no database
 * round trip for most requests. A new version reaches the cache through Postgres LISTEN/NOTIFY (migration 030's
 * trigger on `trust_anchors` notifies `rotor_trust_anchor` with the identity); a lost listening
 * connection is re-established on the next request after a back-off. Listening or not, a cached anchor older
 * than `revalidateMs` (100 ms) is checked against the newest version number (an index lookup; the
 * text is loaded only when it changed), so a notification that is late or lost never leaves an old
 * anchor served for longer than that: at most ten small queries a second, whatever the load.
 */
import type { PoolClient } from 'pg';
import type { RotorLogger } from '../log';
import type { Pool } from '../store/db';
import {
  currentTrustAnchorServed,
  latestAnchorVersion,
  type ServedTrustAnchor,
} from '../store/trust-anchors';

const CHANNEL = 'rotor_trust_anchor';

export interface AnchorCache {
  current(): Promise<ServedTrustAnchor | null>;
  close(): Promise<void>;
}

export function createAnchorCache(
  pool: Pool,
  identity: string,
  options: { revalidateMs?: number; logger?: RotorLogger } = {},
): AnchorCache {
  const revalidateMs = options.revalidateMs ?? 100;
  let cached: { value: ServedTrustAnchor; at: number } | null = null;
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

  // One refresh at a time per generation: a request that arrives after a notification never
  // joins a read that started before it.
  let refreshing: { generation: number; value: Promise<ServedTrustAnchor | null> } | null = null;

  const refresh = async (startedAt: number): Promise<ServedTrustAnchor | null> => {
    const held = cached;
    if (held?.value) {
      const newest = await latestAnchorVersion(pool, identity);
      if (newest === held.value.version) {
        if (generation === startedAt && cached === held) cached = { value: held.value, at: Date.now() };
        return held.value;
      }
    }
    const value = await currentTrustAnchorServed(pool, identity);
    // "No anchor yet" is not cached: the first one published is served at once (setup, tests).
    if (generation === startedAt && value !== null) cached = { value, at: Date.now() };
    return value;
  };

  return {
    async current() {
      ensureListening();
      if (listening) await listening;
      if (cached && Date.now() - cached.at < revalidateMs) return cached.value;
      if (refreshing?.generation !== generation) {
        const mine = { generation, value: refresh(generation) };
        refreshing = mine;
        mine.value
          .finally(() => {
            if (refreshing === mine) refreshing = null;
          })
          // The caller awaiting mine.value sees the failure; this chain only clears the slot.
          .catch(() => undefined);
      }
      return refreshing!.value;
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
