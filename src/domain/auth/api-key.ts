import { type Permission, type Role } from './role';

export interface ApiKey {
  id: string;
  name: string;
  role: Role;
  permissions: Permission[];
  /** Public part of the token, shown in listings so a person can tell keys apart. */
  prefix: string;
  createdAt: Date;
  createdById: string | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** Who is calling: derived from a verified key, carried in the request context. */
export interface Principal {
  keyId: string;
  name: string;
  role: Role;
  /** Capabilities beyond the role (absent: none). */
  permissions?: readonly Permission[];
}

export enum ApiKeyErrorCode {
  MISSING_KEY = 'MISSING_KEY',
  MALFORMED_KEY = 'MALFORMED_KEY',
  UNKNOWN_KEY = 'UNKNOWN_KEY',
  REVOKED_KEY = 'REVOKED_KEY',
  INSUFFICIENT_ROLE = 'INSUFFICIENT_ROLE',
  KEY_NOT_FOUND = 'KEY_NOT_FOUND',
  INVALID_KEY_NAME = 'INVALID_KEY_NAME',
  ALREADY_REVOKED = 'ALREADY_REVOKED',
  LAST_ADMIN_KEY = 'LAST_ADMIN_KEY',
  MISSING_PERMISSION = 'MISSING_PERMISSION',
  RATE_LIMITED = 'RATE_LIMITED',
  INVALID_PERMISSIONS = 'INVALID_PERMISSIONS',
}
