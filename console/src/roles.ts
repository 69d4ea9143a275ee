/** The roles of the api, least first; ADMIN can do all an EDITOR can, and so on. */
export type Role = 'VIEWER' | 'EDITOR' | 'ADMIN' | 'RUNNER';

const RANK: Record<Role, number> = { RUNNER: 0, VIEWER: 1, EDITOR: 2, ADMIN: 3 };

/**
 * The least role of each mutation the console offers. The api decides (and refuses with
 * FORBIDDEN); this only keeps the console from offering what a key may not do. A root test
 * compares the table with the api's own @Allow declarations.
 */
export const MUTATION_ROLES = {
  acknowledgeAlert: 'EDITOR',
  cancelStudy: 'EDITOR',
  cancelTrainingJob: 'EDITOR',
  replayQuarantined: 'EDITOR',
  reviewCanaries: 'ADMIN',
  rollbackModel: 'EDITOR',
  transitionModelVersion: 'EDITOR',
  validateModelVersion: 'EDITOR',
} as const satisfies Record<string, Role>;

export type ConsoleMutation = keyof typeof MUTATION_ROLES;

export function may(role: Role | undefined, mutation: ConsoleMutation): boolean {
  if (!role || role === 'RUNNER') return false;
  return RANK[role] >= RANK[MUTATION_ROLES[mutation]];
}
