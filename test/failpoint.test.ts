/**
 * The worker's test-only failpoints (src/activities/failpoint.ts): absent unless ROTOR_FAILPOINT
 * is set, refused by name when malformed, fired once, and the attempt that reached one reports
 * how it ended (the concurrent-attempt fault tests wait for that line).
 */
import { describe, expect, it } from 'vitest';
import { parseFailpoint } from '../src/activities/failpoint';
import { loadConfig } from '../src/config';

describe('ROTOR_FAILPOINT', () => {
  it('is absent when unset: the worker gets no failpoint dependency', () => {
    expect(parseFailpoint(loadConfig({}).failpoint)).toBeUndefined();
    expect(parseFailpoint(loadConfig({ ROTOR_FAILPOINT: '' }).failpoint)).toBeUndefined();
  });

  it('refuses an unknown point or action in one line', () => {
    expect(() => parseFailpoint('switchKeys:nowhere:stop')).toThrow(
      /ROTOR_FAILPOINT=switchKeys:nowhere:stop: expected <point>:stop or <point>:sleep=<ms>, point one of /,
    );
    expect(() => parseFailpoint('switchKeys:before-transaction:crash')).toThrow(/expected <point>:stop/);
  });

  it('fires once, at its own point only, and reports how that attempt ended', async () => {
    const lines: string[] = [];
    const fp = parseFailpoint('switchKeys:before-transaction:sleep=10', (l) => lines.push(l))!;
    expect(fp.activity).toBe('switchKeys');
    const attempt = fp.watch(async (n: number) => {
      await fp.reach('generateKey:before-generate');
      await fp.reach('switchKeys:before-transaction');
      if (n > 1) throw new Error('stale');
      return { n };
    });
    await expect(attempt(2)).rejects.toThrow('stale');
    await attempt(1);
    expect(lines).toEqual([
      `failpoint switchKeys:before-transaction reached pid=${process.pid}`,
      'failpoint switchKeys:before-transaction continued',
      'failpoint switchKeys:before-transaction attempt threw stale',
    ]);
  });
});
