import { ModelState, type ModelVersion } from '../../src/domain/registry/model';
import { Role } from '../../src/domain/auth/role';
import { type DatasetSnapshot } from '../../src/domain/features/dataset';
import { buildFloatDataset } from '../support/datasets';
import { startTestApp, type TestApp } from '../support/test-app';
import { registerKnownModel } from '../support/trained-model';

export type RoleName = 'VIEWER' | 'EDITOR' | 'ADMIN' | 'RUNNER';
export const ROLES: RoleName[] = ['VIEWER', 'EDITOR', 'ADMIN', 'RUNNER'];

/**
 * A platform with something in it for attacks to reach: a feature view `fz` (features a, b),
 * a READY snapshot, model `fz_model` with version 1 in PRODUCTION, endpoint `fz-endpoint`,
 * and a key of each role.
 */
export interface SecurityFixture {
  app: TestApp;
  tokens: Record<RoleName, string>;
  snapshot: DatasetSnapshot;
  version: ModelVersion;
}

const system = { keyId: 'test', name: 'security test', role: Role.ADMIN };

export async function startSecurityFixture(
  testFile: string,
  env: Record<string, string> = {},
): Promise<SecurityFixture> {
  const app = await startTestApp(testFile, {
    env: { FEATURE_STREAM_CONSUMER: 'off', RATE_LIMIT_PER_SECOND: '0', ...env },
  });
  const s = app.services;
  const t0 = Date.now() - 3_600_000;
  const snapshot = await buildFloatDataset(s, {
    view: 'fz',
    features: ['a', 'b'],
    rows: Array.from({ length: 40 }, (_, i) => ({
      entityKey: `e${i}`,
      at: t0,
      values: { a: i % 5, b: (i % 3) / 2 },
      label: i % 2,
    })),
  });
  const version = await registerKnownModel(s, {
    model: 'fz_model',
    datasetId: snapshot.id,
    features: ['fz@1:a', 'fz@1:b'],
    weights: [1, -1],
    bias: 0,
  });
  await s.registry.validate(system, version.id, snapshot.id);
  for (const to of [
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ])
    await s.registry.transition(system, version.id, to, 'fixture');
  await s.deployments.create(system, {
    endpoint: 'fz-endpoint',
    model: 'fz_model',
    warmupRequests: 1,
  });
  const tokens = {} as Record<RoleName, string>;
  tokens.ADMIN = app.adminToken;
  for (const role of ['VIEWER', 'EDITOR', 'RUNNER'] as const)
    tokens[role] = (await s.apiKeys.create(null, { name: `fz-${role}`, role: Role[role] })).token;
  return { app, tokens, snapshot, version };
}
