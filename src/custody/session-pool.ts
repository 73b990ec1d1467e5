/**
 * A fixed set of PKCS#11 sessions, each used by one operation at a time (a session holds one
 * active sign or find operation). Signing runs off the event loop, so N sessions sign in parallel.
 * A session whose work failed is swapped for a fresh one: a failed call can leave an operation
 * active on it (CKR_OPERATION_ACTIVE for every later caller), and PKCS#11 2.40 has no portable cancel.
 */
import type { Handle } from './pkcs11-module';

interface Waiter {
  resolve(session: Handle): void;
  reject(err: Error): void;
}

export class SessionPool {
  private readonly idle: Handle[];
  private readonly waiters: Waiter[] = [];
  private readonly onIdle: Array<() => void> = [];
  private inUse = 0;
  private closed = false;
  /** The most sessions ever busy at once: evidence the pool really ran operations side by side. */
  peakInUse = 0;

  private readonly all: Handle[];
  /** Sessions from before the module was initialised again: their numbers may be reused, never close them. */
  private readonly stale = new Set<Handle>();
  private openFresh: (() => Handle) | undefined;

  constructor(
    sessions: readonly Handle[],
    private readonly closedError: () => Error,
    /** Closes a session and opens its replacement; throws if it cannot. */
    private readonly reopen: (session: Handle) => Handle,
  ) {
    this.all = [...sessions];
    this.idle = [...sessions];
  }

  get sessions(): readonly Handle[] {
    return this.all;
  }

  get size(): number {
    return this.all.length;
  }

  stats(): { size: number; inUse: number; waiting: number } {
    return { size: this.size, inUse: this.inUse, waiting: this.waiters.length };
  }

  async use<T>(fn: (session: Handle) => T | Promise<T>): Promise<T> {
    let session = this.replaceStale(await this.acquire());
    try {
      return await fn(session);
    } catch (err) {
      session = this.renew(session);
      throw err;
    } finally {
      this.release(session);
    }
  }

  /**
   * After the module was finalised and initialised again every old session handle is dead and its
   * number may already name a new session: each is replaced by a fresh one without being closed,
   * the idle ones now and the busy ones as they come back.
   */
  reset(open: () => Handle): void {
    this.openFresh = open;
    for (const session of this.all) this.stale.add(session);
    for (let i = 0; i < this.idle.length; i++) this.idle[i] = this.replaceStale(this.idle[i]!);
  }

  private replaceStale(session: Handle): Handle {
    if (!this.stale.has(session) || !this.openFresh) return session;
    try {
      const fresh = this.openFresh();
      this.all[this.all.indexOf(session)] = fresh;
      this.stale.delete(session);
      return fresh;
    } catch {
      return session;
    }
  }

  private renew(session: Handle): Handle {
    if (this.stale.has(session)) return this.replaceStale(session);
    try {
      const fresh = this.reopen(session);
      this.all[this.all.indexOf(session)] = fresh;
      return fresh;
    } catch {
      // The token itself is failing; keep the old session so the next caller gets the token's own error.
      return session;
    }
  }

  /** Refuses new work, fails queued work, and resolves once every borrowed session is back. */
  async drain(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
    if (this.inUse > 0) await new Promise<void>((resolve) => this.onIdle.push(resolve));
  }

  private acquire(): Promise<Handle> {
    if (this.closed) return Promise.reject(this.closedError());
    const session = this.idle.pop();
    if (session === undefined)
      return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.inUse++;
    if (this.inUse > this.peakInUse) this.peakInUse = this.inUse;
    return Promise.resolve(session);
  }

  private release(returned: Handle): void {
    const session = this.replaceStale(returned);
    const next = this.waiters.shift();
    if (next) {
      // Straight to the next waiter: the session stays busy.
      next.resolve(session);
      return;
    }
    this.inUse--;
    this.idle.push(session);
    if (this.inUse === 0) for (const resolve of this.onIdle.splice(0)) resolve();
  }
}
