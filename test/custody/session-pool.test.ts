import { describe, expect, it } from 'vitest';
import { SessionPool } from '../../src/custody/session-pool';

const handle = (n: number) => Buffer.from([n]);

describe('session pool', () => {
  it('runs at most size operations at once and serves waiters in order', async () => {
    const pool = new SessionPool(
      [handle(1), handle(2)],
      () => new Error('closed'),
      (s) => s,
    );
    const order: number[] = [];
    const gates: Array<() => void> = [];
    const jobs = [0, 1, 2, 3].map((i) =>
      pool.use(async () => {
        order.push(i);
        await new Promise<void>((resolve) => gates.push(resolve));
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1]);
    expect(pool.stats()).toEqual({ size: 2, inUse: 2, waiting: 2 });
    while (gates.length) {
      gates.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(jobs);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(pool.peakInUse).toBe(2);
  });

  it('replaces a session whose work failed', async () => {
    const replaced: number[] = [];
    const pool = new SessionPool(
      [handle(1)],
      () => new Error('closed'),
      (s) => {
        replaced.push(s[0]!);
        return handle(s[0]! + 10);
      },
    );
    await expect(pool.use(() => Promise.reject(new Error('CKR_ARGUMENTS_BAD')))).rejects.toThrow(
      'CKR_ARGUMENTS_BAD',
    );
    expect(replaced).toEqual([1]);
    expect(pool.sessions).toEqual([handle(11)]);
    expect(await pool.use((s) => s[0])).toBe(11);
  });

  it('drains: queued work fails, new work is refused, busy work finishes', async () => {
    const pool = new SessionPool(
      [handle(1)],
      () => new Error('pool closed'),
      (s) => s,
    );
    let finish!: () => void;
    const busy = pool.use(() => new Promise<string>((resolve) => (finish = () => resolve('done'))));
    const queued = pool.use(() => 'never');
    const drained = pool.drain();
    await expect(queued).rejects.toThrow('pool closed');
    await expect(pool.use(() => 'late')).rejects.toThrow('pool closed');
    finish();
    expect(await busy).toBe('done');
    await drained;
  });
});
