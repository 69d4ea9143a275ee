/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MUTATION_ROLES } from '../console/src/roles';
import { buildAppSchema } from '../src/app/schema';
import { ModelState } from '../src/domain/registry/model';
import { requiredRole } from '../src/resolvers/guard';
import {
  DeploymentNodeDocument,
  DeploymentTrafficDocument,
  LineageSearchDocument,
} from './generated/graphql';
import { buildFloatDataset } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * What the graph gained for the console: a search to start a lineage walk from, per-version
 * traffic figures of an endpoint, deployments through node(id); and the console's own
 * contract with the api (its typed documents are current, its role table is the api's).
 */
let app: TestApp;
let gql: GraphQLTestClient;
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };
const root = path.resolve(__dirname, '..');
const ROW = { 'airport_delays@1:a': 1, 'airport_delays@1:b': 0 };

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  const snapshot = await buildFloatDataset(s, {
    view: 'airport_delays',
    features: ['a', 'b'],
    rows: Array.from({ length: 20 }, (_, i) => ({
      entityKey: `k${i}`,
      at: Date.now() - 60_000,
      values: { a: i % 3, b: i % 2 },
      label: i % 2,
    })),
  });
  const v = await registerKnownModel(s, {
    model: 'flight-delay',
    datasetId: snapshot.id,
    features: ['airport_delays@1:a', 'airport_delays@1:b'],
    weights: [1, -1],
    bias: 0,
  });
  await s.registry.validate(admin, v.id, snapshot.id);
  for (const to of [
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ])
    await s.registry.transition(admin, v.id, to, 'test');
  await s.deployments.create(admin, {
    endpoint: 'flight-delay',
    model: 'flight-delay',
    maxWaitUs: 0,
  });
  // The endpoint joins the lineage graph once it has served.
  await s.serving.predict('flight-delay', 'first', [], [ROW]);
}, 60_000);

afterAll(() => app.stop());

describe('lineageSearch', () => {
  it('finds nodes by a piece of their label, prefixes first, of the kinds asked for', async () => {
    const all = (await gql.ok(LineageSearchDocument, { query: 'DELAY' })).lineageSearch;
    expect(all.map((n) => n.label)).toEqual(
      expect.arrayContaining(['airport_delays@1', 'flight-delay@1', 'flight-delay']),
    );
    expect(all.every((n) => n.depth === 0)).toBe(true);
    // "flight…" labels start with the text; "airport_delays@1" only contains it.
    const flight = all.findIndex((n) => n.label.startsWith('flight'));
    expect(flight).toBeLessThan(all.findIndex((n) => n.label === 'airport_delays@1'));
    const kinds = await gql.ok(LineageSearchDocument, {
      query: 'delay',
      kinds: ['Deployment', 'FeatureViewVersion'],
    });
    expect(kinds.lineageSearch.map((n) => [n.kind, n.label]).sort()).toEqual([
      ['Deployment', 'flight-delay'],
      ['FeatureViewVersion', 'airport_delays@1'],
    ]);
    // LIKE's wildcards are plain characters here.
    expect((await gql.ok(LineageSearchDocument, { query: '%' })).lineageSearch).toEqual([]);
    const underscored = (await gql.ok(LineageSearchDocument, { query: '_' })).lineageSearch;
    expect(underscored.length).toBeGreaterThan(0);
    expect(underscored.every((n) => n.label.includes('_'))).toBe(true);
    expect(
      (await gql.ok(LineageSearchDocument, { query: '', first: 3 })).lineageSearch,
    ).toHaveLength(3);
  });

  it('refuses unknown kinds and silly sizes with a reason', async () => {
    const kind = await gql.request(LineageSearchDocument, { query: 'x', kinds: ['Banana'] });
    expect(kind.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_LINEAGE_QUERY',
    });
    expect(kind.errors?.[0].message).toMatch(/unknown lineage kinds: Banana/);
    const size = await gql.request(LineageSearchDocument, { query: 'x', first: 101 });
    // Page sizes are held to the api's limit before the query runs.
    expect(size.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_PAGE_SIZE',
    });
  });

  it('leads to lineage nodes that node(id) fetches, deployments included', async () => {
    const [d] = (
      await gql.ok(LineageSearchDocument, { query: 'flight-delay', kinds: ['Deployment'] })
    ).lineageSearch;
    const n = (await gql.ok(DeploymentNodeDocument, { id: d.id })).node;
    expect(n).toMatchObject({ __typename: 'Deployment', endpoint: 'flight-delay' });
  });
});

it('deploymentTraffic counts requests, errors and p99 per version over the window', async () => {
  for (let i = 0; i < 29; i++)
    await app.services.serving.predict('flight-delay', `u${i}`, [], [ROW]);
  const [t] = (
    await gql.ok(DeploymentTrafficDocument, { endpoint: 'flight-delay', windowSeconds: 60 })
  ).deploymentTraffic;
  expect(t).toMatchObject({ requests: 30, errors: 0, errorRate: 0, version: { version: 1 } });
  expect(t.rate).toBeCloseTo(30 / 60, 6);
  expect(t.p99Ms).toBeGreaterThan(0);
  const bad = await gql.request(DeploymentTrafficDocument, {
    endpoint: 'flight-delay',
    windowSeconds: 0,
  });
  expect(bad.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  const missing = await gql.request(DeploymentTrafficDocument, { endpoint: 'nope' });
  expect(missing.errors?.[0].extensions?.code).toBe('NOT_FOUND');
});

it('the console offers each mutation to exactly the roles the api allows', () => {
  const mutations = buildAppSchema().getMutationType()?.getFields() ?? {};
  for (const [name, role] of Object.entries(MUTATION_ROLES)) {
    expect(mutations[name]).toBeDefined();
    expect([name, requiredRole(mutations[name])]).toEqual([name, role]);
  }
});

it("the console's typed documents are current: regenerate with `npm run console:codegen`", () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aether-console-codegen-')), 'g.ts');
  const dir = path.join(root, 'console');
  const config = fs
    .readFileSync(path.join(dir, 'codegen.yml'), 'utf8')
    .replace('\n  src/generated/graphql.ts:', `\n  ${out}:`);
  const configFile = path.join(dir, `.codegen-check-${process.pid}.yml`);
  fs.writeFileSync(configFile, config);
  try {
    const r = spawnSync(
      process.execPath,
      [
        path.join(dir, 'node_modules/@graphql-codegen/cli/cjs/bin.js'),
        '--config',
        configFile,
        '--silent',
      ],
      { cwd: dir, encoding: 'utf8', timeout: 120_000 },
    );
    expect([r.status, r.stderr]).toEqual([0, '']);
    const committed = fs.readFileSync(path.join(dir, 'src/generated/graphql.ts'), 'utf8');
    expect(fs.readFileSync(out, 'utf8')).toBe(committed);
  } finally {
    fs.rmSync(configFile, { force: true });
  }
});
