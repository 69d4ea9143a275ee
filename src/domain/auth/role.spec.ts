import { Role, roleSatisfies } from './role';

describe('roleSatisfies', () => {
  it.each([
    [Role.VIEWER, Role.VIEWER, true],
    [Role.VIEWER, Role.EDITOR, false],
    [Role.EDITOR, Role.VIEWER, true],
    [Role.EDITOR, Role.ADMIN, false],
    [Role.ADMIN, Role.EDITOR, true],
    [Role.ADMIN, Role.RUNNER, true],
    [Role.RUNNER, Role.RUNNER, true],
    [Role.RUNNER, Role.VIEWER, false],
    [Role.EDITOR, Role.RUNNER, false],
  ])('%s satisfies %s: %s', (held, required, expected) => {
    expect(roleSatisfies(held, required)).toBe(expected);
  });
});
