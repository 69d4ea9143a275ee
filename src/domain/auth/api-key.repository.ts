import { type Page, type PageRequest } from '../shared/pagination';
import { type ApiKey } from './api-key';
import { type Permission, type Role } from './role';

export interface StoredApiKey extends ApiKey {
  secretHash: string;
}

export interface NewApiKey {
  name: string;
  role: Role;
  permissions: Permission[];
  prefix: string;
  secretHash: string;
  createdById: string | null;
}

export interface ApiKeyChange {
  role?: Role;
  permissions?: Permission[];
}

/** Port: persistence of API keys. Only hashes of secrets ever reach it. */
export interface ApiKeyRepository {
  insert(key: NewApiKey): Promise<ApiKey>;
  findByPrefix(prefix: string): Promise<StoredApiKey | null>;
  findByIds(ids: readonly string[]): Promise<ApiKey[]>;
  list(page: PageRequest, includeRevoked: boolean): Promise<Page<ApiKey>>;
  /** Sets revoked_at if not yet set; returns the key as it is afterwards, or null if absent. */
  revoke(id: string, at: Date): Promise<{ key: ApiKey; changed: boolean } | null>;
  /** Changes an active key's role or permissions; null if absent or revoked. */
  update(id: string, change: ApiKeyChange): Promise<ApiKey | null>;
  touch(id: string, at: Date): Promise<void>;
  countActiveAdmins(): Promise<number>;
}

/**
 * Port: a token that changes whenever any key is revoked, created or changed, shared by every
 * api process. A process trusts its cached verdict on a key only while the token it read
 * before verifying the key is still current, so a revocation is honoured everywhere from the
 * moment the revoking call returns (docs/adr/0017).
 */
export interface KeyEpoch {
  /** The current token; a Redis that lost it gets a fresh one (every cache misses once). */
  read(): Promise<string>;
  /**
   * Replaces the token. With `waitOut`, no one learns the change is done before no process
   * can still use the old one (a process may use a token it read for a bounded time without
   * asking again): it resolves only then, or, while a request is being answered, holds that
   * answer until then.
   */
  bump(waitOut: boolean): Promise<void>;
  /** Called when the shared store was unreachable or reconnected: trust nothing cached. */
  onDisruption(listener: () => void): void;
}
