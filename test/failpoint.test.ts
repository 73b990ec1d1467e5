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
      /ROTOR_FAILPOINT=switchKeys:nowhere:stop: expected <point>:stop or <point>:sleep=<ms>, point one of .*; or <activity>:returned:kill\[:<field>=<value>\]$/,
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

  it('kill on return: after the matching call did its work, once, and its result is never reported', async () => {
    const lines: string[] = [];
    let kills = 0;
    const spec = 'recordAudit:returned:kill:action=rotation.re-sign';
    const fp = parseFailpoint(
      spec,
      (l) => lines.push(l),
      () => {
        kills++;
      },
    )!;
    expect(fp.activity).toBe('recordAudit');
    const done: string[] = [];
    const audit = fp.watch(async (input: { action: string }) => {
      done.push(input.action);
      return { id: done.length };
    });
    // Another call of the same activity passes through.
    await expect(audit({ action: 'rotation.keygen' })).resolves.toEqual({ id: 1 });
    expect(kills).toBe(0);
    // The matching call does its work, then the process is killed before the result goes back.
    const killed = audit({ action: 'rotation.re-sign' });
    const settled = await Promise.race([
      killed.then(() => 'settled'),
      new Promise((r) => setTimeout(r, 50, 'pending')),
    ]);
    expect(settled).toBe('pending');
    expect(done).toEqual(['rotation.keygen', 'rotation.re-sign']);
    expect(kills).toBe(1);
    expect(lines).toEqual([`failpoint ${spec} reached pid=${process.pid}: killing`]);
    // Once per process: a later matching call (another process's retry, here the same) runs on.
    await expect(audit({ action: 'rotation.re-sign' })).resolves.toEqual({ id: 3 });
    expect(kills).toBe(1);
  });

  it('kill on return without a filter: the first call that returns; a failed call never kills', async () => {
    let kills = 0;
    const fp = parseFailpoint(
      'decommissionKey:returned:kill',
      () => {},
      () => {
        kills++;
      },
    )!;
    const destroy = fp.watch(async (fail: boolean) => {
      if (fail) throw new Error('HSM busy');
      return 'destroyed';
    });
    await expect(destroy(true)).rejects.toThrow('HSM busy');
    expect(kills).toBe(0);
    void destroy(false);
    await new Promise((r) => setTimeout(r, 10));
    expect(kills).toBe(1);
  });

  it('refuses a kill spec without a value or with an action other than kill', () => {
    expect(() => parseFailpoint('recordAudit:returned:kill:action=')).toThrow(
      /ROTOR_FAILPOINT=recordAudit:returned:kill:action=: expected /,
    );
    expect(() => parseFailpoint('recordAudit:returned:stop')).toThrow(/expected /);
  });
});
