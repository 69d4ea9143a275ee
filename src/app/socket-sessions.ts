import { type Principal } from '../domain/auth/api-key';
import { DomainError } from '../domain/shared/domain-error';

/** The close code a socket gets when its key no longer allows what it was opened with. */
export const CLOSE_KEY_REFUSED = 4403;

export interface SocketSession {
  token: string;
  principal: Principal;
  close(code: number, reason: string): void;
}

/**
 * The open graphql-ws connections of this process and the key each was opened with. A sweep
 * (on every key event from any process, and on a timer in case an event was lost) checks
 * each key again and closes, with 4403 and a reason, the sockets whose key was revoked or
 * whose role or permissions changed: their subscriptions end with them.
 */
export class SocketSessions {
  private readonly sessions = new Set<SocketSession>();
  private sweeping: Promise<void> | null = null;

  add(s: SocketSession): void {
    this.sessions.add(s);
  }

  remove(s: SocketSession): void {
    this.sessions.delete(s);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Checks every session's key; sweeps requested while one runs join it. */
  sweep(authenticate: (token: string) => Promise<Principal>): Promise<void> {
    this.sweeping ??= this.run(authenticate).finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async run(authenticate: (token: string) => Promise<Principal>): Promise<void> {
    const byToken = new Map<string, SocketSession[]>();
    for (const s of this.sessions) {
      const list = byToken.get(s.token) ?? [];
      list.push(s);
      byToken.set(s.token, list);
    }
    for (const [token, list] of byToken) {
      const verdict = await refusal(authenticate, token, list[0].principal);
      if (verdict === null || verdict === 'unknown') continue;
      for (const s of list) {
        this.sessions.delete(s);
        s.close(CLOSE_KEY_REFUSED, verdict);
      }
    }
  }
}

/**
 * Why a key no longer holds for a socket opened as `was`, null if it still does, or
 * 'unknown' when the key could not be checked (a dependency down): then nothing is closed.
 */
export async function refusal(
  authenticate: (token: string) => Promise<Principal>,
  token: string,
  was: Principal,
): Promise<string | null | 'unknown'> {
  let now: Principal;
  try {
    now = await authenticate(token);
  } catch (e) {
    if (e instanceof DomainError && e.category === 'UNAUTHENTICATED') return e.message;
    return 'unknown';
  }
  const same =
    now.role === was.role &&
    [...(now.permissions ?? [])].sort().join() === [...(was.permissions ?? [])].sort().join();
  return same ? null : 'The API key’s role or permissions changed: reconnect';
}
