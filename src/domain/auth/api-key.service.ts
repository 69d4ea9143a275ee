import { type Clock } from '../shared/clock';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
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
import { type ApiKeyChange, type ApiKeyRepository, type KeyEpoch } from './api-key.repository';
import { issueToken, parseToken, secretMatches } from './api-key-token';
import { type Permission, Role } from './role';

export enum ApiKeyEventKind {
  CREATED = 'CREATED',
  REVOKED = 'REVOKED',
  /** Its role or permissions changed. */
  UPDATED = 'UPDATED',
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

/**
 * Verdicts on keys are cached so authentication costs no query per request, but only while
 * the shared key epoch is unchanged (see KeyEpoch); the age limit is a backstop for an epoch
 * change that could not be written.
 */
const AUTH_CACHE_MS = 60_000;
const AUTH_CACHE_MAX = 10_000;
const BUMP_RETRY_MS = 1_000;
/** last_used_at is a hint for people, written at most this often per key. */
const TOUCH_EVERY_MS = 60_000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$/;

export class ApiKeyService {
  /** By prefix: the verdict (a principal, or null for no such key) and the epoch it was read at. */
  private readonly cache = new Map<
    string,
    { principal: Principal | null; secret: string; epoch: string; until: number }
  >();
  private readonly touchedAt = new Map<string, number>();
  private bumpRetry: NodeJS.Timeout | null = null;

  constructor(
    private readonly repo: ApiKeyRepository,
    private readonly epoch: KeyEpoch,
    private readonly events: EventBus,
    private readonly clock: Clock,
    /** A key's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {
    epoch.onDisruption(() => this.cache.clear());
  }

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
    // Read before the key is looked up: a verdict is then never older than the epoch it carries.
    const epoch = await this.epoch.read().catch(() => null);
    const hit = this.cache.get(parsed.prefix);
    if (hit && epoch !== null && hit.epoch === epoch && hit.until > now) {
      if (hit.principal && hit.secret === parsed.secret) return hit.principal;
      if (!hit.principal)
        throw unauthenticated(ApiKeyErrorCode.UNKNOWN_KEY, 'The API key is not valid');
    }

    const stored = await this.repo.findByPrefix(parsed.prefix);
    if (!stored) {
      if (epoch !== null) this.remember(parsed.prefix, null, '', epoch, now);
      throw unauthenticated(ApiKeyErrorCode.UNKNOWN_KEY, 'The API key is not valid');
    }
    if (!secretMatches(parsed.secret, stored.secretHash))
      throw unauthenticated(ApiKeyErrorCode.UNKNOWN_KEY, 'The API key is not valid');
    if (stored.revokedAt) {
      // Nothing is run ahead for it any more (cachedPrincipal).
      this.forget(parsed.prefix);
      throw unauthenticated(ApiKeyErrorCode.REVOKED_KEY, 'The API key has been revoked');
    }
    const principal: Principal = {
      keyId: stored.id,
      name: stored.name,
      role: stored.role,
      permissions: stored.permissions,
    };
    if (epoch !== null) this.remember(parsed.prefix, principal, parsed.secret, epoch, now);
    this.touch(stored.id, now);
    return principal;
  }

  /**
   * The principal this process last confirmed for the token, without asking whether it still
   * holds (no epoch read): for work that may start while `authenticate` confirms it, and is
   * kept only if `authenticate` returns the same key.
   */
  cachedPrincipal(token: string | undefined): Principal | null {
    const parsed = token ? parseToken(token) : null;
    const hit = parsed ? this.cache.get(parsed.prefix) : undefined;
    return hit?.principal && hit.secret === parsed?.secret && hit.until > this.clock.now().getTime()
      ? hit.principal
      : null;
  }

  async create(
    actor: Principal | null,
    input: { name: string; role: Role; permissions?: Permission[] | null },
  ): Promise<CreatedApiKey> {
    const name = input.name.trim();
    if (!NAME_RE.test(name)) {
      throw new InvalidInputError(
        ApiKeyErrorCode.INVALID_KEY_NAME,
        'Key name must be 1-100 characters of letters, digits, space and . _ : -, starting with a letter or digit',
        { field: 'name' },
      );
    }
    const permissions = checkPermissions(input.role, input.permissions ?? []);
    const issued = issueToken();
    const key = await this.uow.run(async () => {
      const k = await this.repo.insert({
        name,
        role: input.role,
        permissions,
        prefix: issued.prefix,
        secretHash: issued.secretHash,
        createdById: actor?.keyId ?? null,
      });
      await this.publish(ApiKeyEventKind.CREATED, k.id, actor);
      return k;
    });
    // A key's prefix may have been cached as unknown by a process probing it before. Not
    // waited out: refusing a new key for a moment is no breach (see KeyEpoch.bump).
    await this.changed(false);
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
    const result = await this.uow.run(async () => {
      const r = await this.repo.revoke(id, this.clock.now());
      if (!r) throw new NotFoundError(ApiKeyErrorCode.KEY_NOT_FOUND, `No API key with id ${id}`);
      await this.publish(ApiKeyEventKind.REVOKED, id, actor);
      return r;
    });
    this.forget(result.key.prefix);
    await this.changed();
    return result.key;
  }

  /** Changes a key's role or permissions; every process re-checks the key at once. */
  async update(actor: Principal, id: string, change: ApiKeyChange): Promise<ApiKey> {
    const existing = (await this.repo.findByIds([id]))[0];
    if (!existing)
      throw new NotFoundError(ApiKeyErrorCode.KEY_NOT_FOUND, `No API key with id ${id}`);
    if (existing.revokedAt)
      throw new ConflictError(
        ApiKeyErrorCode.ALREADY_REVOKED,
        `API key "${existing.name}" is revoked; create a new key instead`,
      );
    const role = change.role ?? existing.role;
    const permissions = checkPermissions(role, change.permissions ?? existing.permissions);
    if (
      existing.role === Role.ADMIN &&
      role !== Role.ADMIN &&
      (await this.repo.countActiveAdmins()) <= 1
    ) {
      throw new ConflictError(
        ApiKeyErrorCode.LAST_ADMIN_KEY,
        'Refusing to demote the last active admin key: create another admin key first',
      );
    }
    const updated = await this.uow.run(async () => {
      const u = await this.repo.update(id, { role, permissions });
      if (!u) throw new NotFoundError(ApiKeyErrorCode.KEY_NOT_FOUND, `No API key with id ${id}`);
      await this.publish(ApiKeyEventKind.UPDATED, id, actor);
      return u;
    });
    this.forget(updated.prefix);
    await this.changed();
    return updated;
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

  /** Revocations and changes made by any process (this one included) evict the cached key. */
  onKeyEvent(event: ApiKeyEvent): void {
    if (event.kind === ApiKeyEventKind.CREATED) return;
    for (const [prefix, entry] of this.cache) {
      if (entry.principal?.keyId === event.keyId) this.forget(prefix);
    }
  }

  close(): void {
    if (this.bumpRetry) clearTimeout(this.bumpRetry);
    this.bumpRetry = null;
  }

  private remember(
    prefix: string,
    principal: Principal | null,
    secret: string,
    epoch: string,
    now: number,
  ): void {
    if (this.cache.size >= AUTH_CACHE_MAX && !this.cache.has(prefix)) this.cache.clear();
    this.cache.set(prefix, { principal, secret, epoch, until: now + AUTH_CACHE_MS });
  }

  private forget(prefix: string): void {
    this.cache.delete(prefix);
  }

  /**
   * Moves the shared epoch on after a change is committed. Should Redis be unreachable, the
   * change stands (it is in the database, and every process that cannot read the epoch
   * verifies keys against the database), and the bump is retried until it lands.
   */
  private async changed(waitOut = true): Promise<void> {
    try {
      await this.epoch.bump(waitOut);
      if (this.bumpRetry) clearTimeout(this.bumpRetry);
      this.bumpRetry = null;
    } catch {
      this.bumpRetry ??= setTimeout(() => {
        this.bumpRetry = null;
        void this.changed(false);
      }, BUMP_RETRY_MS);
      this.bumpRetry.unref?.();
    }
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

/** RUNNER keys act for machines: they hold no human permissions. */
function checkPermissions(role: Role, permissions: readonly Permission[]): Permission[] {
  const unique = [...new Set(permissions)];
  if (role === Role.RUNNER && unique.length > 0)
    throw new InvalidInputError(
      ApiKeyErrorCode.INVALID_PERMISSIONS,
      'A RUNNER key cannot hold permissions',
      { field: 'permissions' },
    );
  return unique;
}

function unauthenticated(reason: ApiKeyErrorCode, message: string): DomainError {
  return new DomainError(ErrorCategory.UNAUTHENTICATED, reason, message);
}
