import { type GraphQLSchema } from 'graphql';
import { type Role } from '../domain/auth/role';
import { requiredRole } from '../resolvers/guard';

export type RouteName =
  | 'healthz'
  | 'readyz'
  | 'metrics'
  | 'graphql'
  | 'predict'
  | 'runs'
  | 'datasets'
  | 'studies'
  | 'console';

/**
 * Who may call a route. A REST route that does what a GraphQL field does takes that field's
 * role (`sameAs`), so the two doors of one operation can never disagree.
 */
export type AccessRule =
  | { kind: 'public'; why: string }
  | { kind: 'metricsKey' }
  | { kind: 'anyKey'; why: string }
  | { kind: 'sameAs'; field: `${'Query' | 'Mutation'}.${string}` };

export interface RouteSpec {
  name: RouteName;
  matches(path: string): boolean;
  methods: readonly string[];
  access: AccessRule;
}

const READ = ['GET', 'HEAD'];
const exact = (p: string) => (path: string) => path === p;
const under = (p: string) => (path: string) => path.startsWith(p);

/** Every HTTP route the api serves; anything else is 404. test/security checks the table. */
export const ROUTES: readonly RouteSpec[] = [
  {
    name: 'healthz',
    matches: exact('/healthz'),
    methods: READ,
    access: { kind: 'public', why: 'liveness' },
  },
  {
    name: 'readyz',
    matches: exact('/readyz'),
    methods: READ,
    access: { kind: 'public', why: 'readiness' },
  },
  { name: 'metrics', matches: exact('/metrics'), methods: READ, access: { kind: 'metricsKey' } },
  {
    name: 'graphql',
    matches: exact('/graphql'),
    methods: ['GET', 'POST'],
    access: { kind: 'anyKey', why: 'each field checks its own role (resolvers/guard.ts)' },
  },
  {
    name: 'predict',
    matches: under('/v1/predict/'),
    methods: ['POST'],
    access: { kind: 'sameAs', field: 'Mutation.predict' },
  },
  {
    name: 'runs',
    matches: under('/runs/'),
    methods: ['GET', 'PUT'],
    access: { kind: 'sameAs', field: 'Mutation.reportRunProgress' },
  },
  {
    // A snapshot's download: the graph reads a DatasetSnapshot through node(id).
    name: 'datasets',
    matches: under('/datasets/'),
    methods: READ,
    access: { kind: 'sameAs', field: 'Query.node' },
  },
  {
    // A study's Optuna journal: the graph reads a Study through node(id).
    name: 'studies',
    matches: under('/studies/'),
    methods: READ,
    access: { kind: 'sameAs', field: 'Query.node' },
  },
  {
    // Last: whatever no API route claims is a file or a client route of the console.
    name: 'console',
    matches: () => true,
    methods: READ,
    access: { kind: 'public', why: 'the console’s built files; all it asks the api needs a key' },
  },
];

type KeyedRoute = 'graphql' | 'predict' | 'runs' | 'datasets' | 'studies';

export type Access = { kind: 'key' } | { kind: 'role'; role: Role; what: string };

/** The role each keyed route requires, read from the schema's guards once at start. */
export function resolveAccess(schema: GraphQLSchema): Record<KeyedRoute, Access> {
  const out: Partial<Record<RouteName, Access>> = {};
  for (const r of ROUTES) {
    if (r.access.kind === 'anyKey') out[r.name] = { kind: 'key' };
    if (r.access.kind !== 'sameAs') continue;
    const [typeName, fieldName] = r.access.field.split('.');
    const type = typeName === 'Query' ? schema.getQueryType() : schema.getMutationType();
    const field = type?.getFields()[fieldName];
    const role = field ? requiredRole(field) : undefined;
    if (!role)
      throw new Error(`Route ${r.name} takes its role from ${r.access.field}, which has none`);
    out[r.name] = { kind: 'role', role, what: `${r.name} (as ${r.access.field})` };
  }
  return out as Record<KeyedRoute, Access>;
}
