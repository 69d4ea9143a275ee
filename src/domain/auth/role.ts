import { DomainError, ErrorCategory } from '../shared/domain-error';

/**
 * Human roles are ordered (viewer < editor < admin); `runner` is a separate capability
 * held by gpu-runner processes. An admin may do anything, including runner calls, so
 * an operator can drive the runner protocol by hand when debugging.
 */
export enum Role {
  VIEWER = 'VIEWER',
  EDITOR = 'EDITOR',
  ADMIN = 'ADMIN',
  RUNNER = 'RUNNER',
}

const HUMAN_RANK: Partial<Record<Role, number>> = {
  [Role.VIEWER]: 1,
  [Role.EDITOR]: 2,
  [Role.ADMIN]: 3,
};

/** Whether a key holding `held` may call something that requires `required`. */
export function roleSatisfies(held: Role, required: Role): boolean {
  if (held === Role.ADMIN) return true;
  if (required === Role.RUNNER || held === Role.RUNNER) return held === required;
  return (HUMAN_RANK[held] ?? 0) >= (HUMAN_RANK[required] ?? Infinity);
}

export function parseRole(raw: string): Role | undefined {
  return (Object.values(Role) as string[]).includes(raw) ? (raw as Role) : undefined;
}

/**
 * Capabilities granted to a key on top of its role, by an ADMIN (who holds them all).
 * COMMAND_TRAINERS: submit trainers that run an arbitrary command on the runner hosts.
 * That is code execution on shared machines, so being an EDITOR is not enough.
 */
export enum Permission {
  COMMAND_TRAINERS = 'COMMAND_TRAINERS',
}

export function holdsPermission(
  held: { role: Role; permissions?: readonly Permission[] },
  permission: Permission,
): boolean {
  return held.role === Role.ADMIN || (held.permissions ?? []).includes(permission);
}

/** Refuses a caller without the permission: FORBIDDEN, reason MISSING_PERMISSION. */
export function requirePermission(
  actor: { role: Role; permissions?: readonly Permission[] },
  permission: Permission,
  what: string,
): void {
  if (holdsPermission(actor, permission)) return;
  throw new DomainError(
    ErrorCategory.FORBIDDEN,
    'MISSING_PERMISSION',
    `${what} needs the ${permission} permission, which an ADMIN grants with updateApiKey`,
    { required: permission },
  );
}
