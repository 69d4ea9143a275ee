import { type Page, type PageRequest } from '../shared/pagination';
import { type ApiKey } from './api-key';
import { type Role } from './role';

export interface StoredApiKey extends ApiKey {
  secretHash: string;
}

export interface NewApiKey {
  name: string;
  role: Role;
  prefix: string;
  secretHash: string;
  createdById: string | null;
}

/** Port: persistence of API keys. Only hashes of secrets ever reach it. */
export interface ApiKeyRepository {
  insert(key: NewApiKey): Promise<ApiKey>;
  findByPrefix(prefix: string): Promise<StoredApiKey | null>;
  findByIds(ids: readonly string[]): Promise<ApiKey[]>;
  list(page: PageRequest, includeRevoked: boolean): Promise<Page<ApiKey>>;
  /** Sets revoked_at if not yet set; returns the key as it is afterwards, or null if absent. */
  revoke(id: string, at: Date): Promise<{ key: ApiKey; changed: boolean } | null>;
  touch(id: string, at: Date): Promise<void>;
  countActiveAdmins(): Promise<number>;
}
