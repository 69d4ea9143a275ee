import { type Clock } from '../shared/clock';
import {
  ConflictError,
  DomainError,
  ErrorCategory,
  InvalidInputError,
  NotFoundError,
} from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { type EventBus, Topics } from '../events/event-bus';
import { type ApiKey, ApiKeyErrorCode, type Principal } from './api-key';
import { type ApiKeyRepository } from './api-key.repository';
import { issueToken, parseToken, secretMatches } from './api-key-token';
import { Role } from './role';

export enum ApiKeyEventKind {
  CREATED = 'CREATED',
  REVOKED = 'REVOKED',
}

export interface ApiKeyEvent {
  kind: ApiKeyEventKind;
  keyId: string;
  actorKeyId: string | null;
  at: string;
}

export interface CreatedApiKey {
  key: ApiKey;
  /** The only time the secret exists outside the caller's hands. */
  token: string;
}

/** Verified keys are remembered briefly so authentication costs no query per request. */
const AUTH_CACHE_MS = 5_000;
/** last_used_at is a hint for people, written at most this often per key. */
const TOUCH_EVERY_MS = 60_000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$/;

export class ApiKeyService {
  private readonly cache = new Map<
    string,
    { principal: Principal; secret: string; until: number }
  >();
  private readonly touchedAt = new Map<string, number>();

  constructor(
    private readonly repo: ApiKeyRepository,
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {}

  async authenticate(token: string | undefined): Promise<Principal> {
    if (!token) {
      throw unauthenticated(
        ApiKeyErrorCode.MISSING_KEY,
        'An API key is required: send `Authorization: Bearer <key>`',
      );
    }
    const parsed = parseToken(token);
    if (!parsed) throw unauthenticated(ApiKeyErrorCode.MALFORMED_KEY, 'The API key is malformed');
    const now = this.clock.now().getTime();
    const hit = this.cache.get(parsed.prefix);
    if (hit && hit.until > now && hit.secret === parsed.secret) return hit.principal;

    const stored = await this.repo.findByPrefix(parsed.prefix);
    if (!stored || !secretMatches(parsed.secret, stored.secretHash)) {
      throw unauthenticated(ApiKeyErrorCode.UNKNOWN_KEY, 'The API key is not valid');
    }
    if (stored.revokedAt)
      throw unauthenticated(ApiKeyErrorCode.REVOKED_KEY, 'The API key has been revoked');
    const principal: Principal = { keyId: stored.id, name: stored.name, role: stored.role };
    this.cache.set(parsed.prefix, { principal, secret: parsed.secret, until: now + AUTH_CACHE_MS });
    this.touch(stored.id, now);
    return principal;
  }

  async create(
    actor: Principal | null,
    input: { name: string; role: Role },
  ): Promise<CreatedApiKey> {
    const name = input.name.trim();
    if (!NAME_RE.test(name)) {
      throw new InvalidInputError(
        ApiKeyErrorCode.INVALID_KEY_NAME,
        'Key name must be 1-100 characters of letters, digits, space and . _ : -, starting with a letter or digit',
        { field: 'name' },
      );
    }
    const issued = issueToken();
    const key = await this.repo.insert({
      name,
      role: input.role,
      prefix: issued.prefix,
      secretHash: issued.secretHash,
      createdById: actor?.keyId ?? null,
    });
    await this.publish(ApiKeyEventKind.CREATED, key.id, actor);
    return { key, token: issued.token };
  }

  async revoke(actor: Principal, id: string): Promise<ApiKey> {
    const existing = (await this.repo.findByIds([id]))[0];
    if (!existing)
      throw new NotFoundError(ApiKeyErrorCode.KEY_NOT_FOUND, `No API key with id ${id}`);
    if (existing.revokedAt) {
      throw new ConflictError(
        ApiKeyErrorCode.ALREADY_REVOKED,
        `API key "${existing.name}" is already revoked`,
      );
    }
    if (existing.role === Role.ADMIN && (await this.repo.countActiveAdmins()) <= 1) {
      throw new ConflictError(
        ApiKeyErrorCode.LAST_ADMIN_KEY,
        'Refusing to revoke the last active admin key: create another admin key first',
      );
    }
    const result = await this.repo.revoke(id, this.clock.now());
    if (!result) throw new NotFoundError(ApiKeyErrorCode.KEY_NOT_FOUND, `No API key with id ${id}`);
    this.forget(result.key.prefix);
    await this.publish(ApiKeyEventKind.REVOKED, id, actor);
    return result.key;
  }

  list(page: PageRequest, includeRevoked: boolean): Promise<Page<ApiKey>> {
    return this.repo.list(page, includeRevoked);
  }

  byIds(ids: readonly string[]): Promise<ApiKey[]> {
    return this.repo.findByIds(ids);
  }

  /** First start of a fresh installation: make sure someone can administer it. */
  async ensureAdminKey(): Promise<CreatedApiKey | null> {
    if ((await this.repo.countActiveAdmins()) > 0) return null;
    return this.create(null, { name: 'bootstrap-admin', role: Role.ADMIN });
  }

  /** Revocations made by any process (this one included) evict the cached key. */
  onKeyEvent(event: ApiKeyEvent): void {
    if (event.kind !== ApiKeyEventKind.REVOKED) return;
    for (const [prefix, entry] of this.cache) {
      if (entry.principal.keyId === event.keyId) this.forget(prefix);
    }
  }

  private forget(prefix: string): void {
    this.cache.delete(prefix);
  }

  private touch(id: string, now: number): void {
    const last = this.touchedAt.get(id) ?? 0;
    if (now - last < TOUCH_EVERY_MS) return;
    this.touchedAt.set(id, now);
    // Off the request path: a lost update only makes a hint slightly older.
    this.repo.touch(id, new Date(now)).catch(() => this.touchedAt.delete(id));
  }

  private async publish(
    kind: ApiKeyEventKind,
    keyId: string,
    actor: Principal | null,
  ): Promise<void> {
    const event: ApiKeyEvent = {
      kind,
      keyId,
      actorKeyId: actor?.keyId ?? null,
      at: this.clock.now().toISOString(),
    };
    await this.events.publish(Topics.apiKeys, event);
  }
}

function unauthenticated(reason: ApiKeyErrorCode, message: string): DomainError {
  return new DomainError(ErrorCategory.UNAUTHENTICATED, reason, message);
}
