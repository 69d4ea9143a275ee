import { registerEnumType } from 'type-graphql';
import { Permission, Role } from '../domain/auth/role';

registerEnumType(Role, {
  name: 'Role',
  description: 'VIEWER < EDITOR < ADMIN; RUNNER is for gpu-runner processes.',
});

registerEnumType(Permission, {
  name: 'Permission',
  description: 'Capabilities an ADMIN grants a key on top of its role (ADMINs hold them all).',
  valuesConfig: {
    COMMAND_TRAINERS: {
      description: 'Submit command trainers: programs that run on the runner hosts.',
    },
  },
});

export { Permission, Role };
