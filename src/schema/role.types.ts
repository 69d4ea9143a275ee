import { registerEnumType } from 'type-graphql';
import { Role } from '../domain/auth/role';

registerEnumType(Role, {
  name: 'Role',
  description: 'VIEWER < EDITOR < ADMIN; RUNNER is for gpu-runner processes.',
});

export { Role };
