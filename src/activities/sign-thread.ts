/**
 * One thread of the sign pool (src/activities/sign-pool.ts): takes a batch of stored manifests,
 * verifies and re-issues them with `signRows`, and posts the twins and declines back. With a
 * software key the thread signs itself (the key's KeyObject was cloned to it); otherwise each
 * signature is asked of the pool's thread, which holds the custodian (an HSM session).
 */
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { ed25519Sign } from '../manifest/keys';
import type { KeyType, Signer } from '../manifest/signer';
import { type BatchFacts, type BatchRow, signRows } from './reissue-batch';

export interface ThreadJob {
  job: number;
  rows: BatchRow[];
  facts: BatchFacts;
  signer: { keyId: string; keyType: KeyType; publicKey: Uint8Array; threadKey?: KeyObject };
}

export type ThreadReply =
  | { job: number; result: Awaited<ReturnType<typeof signRows>> }
  | { job: number; error: { message: string; name: string; code?: string } }
  | { job: number; sign: number; message: Uint8Array };

export type ThreadSigned = { signed: number; signature?: Uint8Array; error?: string };

const port = parentPort!;
const waiting = new Map<number, { resolve: (s: Uint8Array) => void; reject: (e: Error) => void }>();
let nextSign = 0;

function signerFor(job: ThreadJob): Signer {
  const { keyId, keyType, publicKey, threadKey } = job.signer;
  if (threadKey) return { keyId, keyType, publicKey, sign: async (m) => ed25519Sign(threadKey, m) };
  return {
    keyId,
    keyType,
    publicKey,
    sign: (message) =>
      new Promise<Uint8Array>((resolve, reject) => {
        const sign = nextSign++;
        waiting.set(sign, { resolve, reject });
        port.postMessage({ job: job.job, sign, message } satisfies ThreadReply);
      }),
  };
}

port.on('message', (msg: ThreadJob | ThreadSigned) => {
  if ('signed' in msg) {
    const w = waiting.get(msg.signed);
    waiting.delete(msg.signed);
    if (msg.signature) w?.resolve(msg.signature);
    else w?.reject(new Error(msg.error ?? 'signing failed'));
    return;
  }
  signRows(msg.rows, msg.facts, signerFor(msg)).then(
    (result) => port.postMessage({ job: msg.job, result } satisfies ThreadReply),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e as { code?: unknown }).code;
      port.postMessage({
        job: msg.job,
        error: { message: e.message, name: e.name, ...(typeof code === 'string' ? { code } : {}) },
      } satisfies ThreadReply);
    },
  );
});
