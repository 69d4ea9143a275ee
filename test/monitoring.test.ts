/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { LineageDirection } from '../src/domain/lineage/lineage';
import { AlertKind, MonitorKind } from '../src/domain/monitoring/monitor';
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { ManualClock } from '../src/domain/shared/clock';
import { Rng } from '../src/domain/training/rng';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  AcknowledgeAlertDocument,
  CreateDeploymentDocument,
  CreateMonitorDocument,
  DriftEventsDocument,
  NodeByIdDocument,
  OpenAlertsDocument,
  PerformanceEventsDocument,
  RunMonitorDocument,
} from './generated/graphql';
import { buildFloatDataset } from './support/datasets';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * Monitoring end to end on real Postgres, Redis and an ONNX model, all through the graph:
 * a shifted input feature is caught against the training snapshot (and only that feature),
 * the alert opens once however often the monitor runs, is acknowledged, clears on a clean
 * window, and sits in lineage after its report, the version and the reference snapshot; a
 * performance monitor waits for enough labels, then alerts when AUC falls below the
 * version's own evaluation.
 */
const HOUR = 3_600_000;
const clock = new ManualClock(Date.now());
const F = ['acct@1:a', 'acct@1:b'];
let app: TestApp;
let gql: GraphQLTestClient;
let v1: ModelVersion;
/** The challenger of the performance test (STAGING after it). */
let v2: ModelVersion;
let snapshotId: string;
let deployedAt: number;
const rng = new Rng(7);
/** The accounts of the training snapshot: key, when their values became known, feature a. */
const accounts: { key: string; at: number; a: number }[] = [];
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', MONITOR_INTERVAL_MS: '0' },
    overrides: { clock },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  const at = clock.ms - 2 * HOUR;
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 600 }, (_, i) => {
      const a = rng.normal();
      accounts.push({ key: `u${i}`, at, a });
      return {
        entityKey: `u${i}`,
        at,
        values: { a, b: 5 + 2 * rng.normal() },
        label: a + 0.5 * rng.normal() > 0 ? 1 : 0,
      };
    }),
  });
  snapshotId = snapshot.id;
  v1 = await registerKnownModel(s, {
    model: 'risk',
    datasetId: snapshot.id,
    features: F,
    weights: [1, 0],
    bias: 0,
  });
  await s.registry.validate(admin, v1.id, snapshot.id); // the reference evaluation
  for (const to of [
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ])
    await s.registry.transition(admin, v1.id, to, 'test');
  await gql.ok(CreateDeploymentDocument, { input: { endpoint: 'risk', model: 'risk' } });
  deployedAt = clock.ms;
}, 60_000);

afterAll(() => app.stop());

/** `n` predictions of inline rows, a ~ N(aMean, 1), b ~ N(5, 2); returns their ids and a. */
async function traffic(n: number, aMean: number): Promise<{ id: string; a: number }[]> {
  const rows = Array.from({ length: n }, () => ({
    [F[0]]: aMean + rng.normal(),
    [F[1]]: 5 + 2 * rng.normal(),
  }));
  const out = await app.services.serving.predict('risk', `k${clock.ms}`, [], rows);
  return out.map((p, i) => ({ id: p.id, a: rows[i][F[0]] }));
}

it('catches the shifted feature (only it), alerts once, acknowledges, clears, and keeps lineage', async () => {
  const ws = gql.ws();
  const events = collect(ws, DriftEventsDocument, { endpoint: 'risk' });
  await new Promise((r) => setTimeout(r, 300));

  await traffic(400, 0.8);
  clock.ms += 1_000;
  const { createMonitor: monitor } = await gql.ok(CreateMonitorDocument, {
    input: { endpoint: 'risk', kind: 'DATA_DRIFT', windowMs: 10 * 60_000, stepMs: 60_000 },
  });
  expect(monitor.settings).toMatchObject({ bins: 10, minSamples: 100, rule: { test: 'DEFAULT' } });

  const [report] = (await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor;
  expect(report.alerting).toBe(true);
  expect(report.predictions).toBe(400);
  expect(report.version?.version).toBe(1);
  expect(report.referenceDatasetId).toBe(toGlobalId('DatasetSnapshot', snapshotId));
  const [a, b] = report.features;
  expect(a).toMatchObject({ feature: F[0], drifted: true });
  expect(a.rule).toMatch(/^default: KS p \S+ < 0\.01 and Wasserstein 0\.\d+ sd ≥ 0\.1 sd$/);
  expect(b).toMatchObject({ feature: F[1], drifted: false });
  // Histograms of both windows over the reference's decile bins, for a client to draw.
  expect(a.edges).toHaveLength(9);
  expect(a.referenceCounts.reduce((x, y) => x + y)).toBe(600);
  expect(a.currentCounts.reduce((x, y) => x + y)).toBe(400);
  expect(a.currentCounts[9]).toBeGreaterThan(a.referenceCounts[9]); // mass moved up

  // Running again while drift persists refreshes the open alert; it does not open another.
  clock.ms += 1_000;
  expect((await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor[0].alerting).toBe(true);
  const open = (await gql.ok(OpenAlertsDocument, {})).alerts.edges.map((e) => e.node);
  expect(open).toHaveLength(1);
  expect(open[0]).toMatchObject({ kind: 'DATA_DRIFT', status: 'OPEN' });
  expect(open[0].summary).toMatch(/1 of 2 features drifted: acct@1:a/);

  const ack = await gql.ok(AcknowledgeAlertDocument, { id: open[0].id });
  expect(ack.acknowledgeAlert).toMatchObject({
    status: 'ACKNOWLEDGED',
    acknowledgedBy: 'bootstrap-admin',
  });

  // A clean window later: the alert clears.
  clock.ms += 11 * 60_000;
  await traffic(400, 0);
  clock.ms += 1_000;
  const [clean] = (await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor;
  expect(clean.alerting).toBe(false);
  expect(clean.summary).toMatch(/no drift in 2 features over 400 predictions/);
  expect((await gql.ok(OpenAlertsDocument, {})).alerts.edges).toHaveLength(0);

  const got = await events.next(3);
  expect(got.map((e) => e.driftEvents.status)).toEqual(['OPENED', 'ACKNOWLEDGED', 'CLEARED']);
  expect(got.every((e) => e.driftEvents.endpoint === 'risk')).toBe(true);
  events.dispose();
  await ws.dispose();

  // Lineage: snapshot and version → report → alert.
  const alertNode = `Alert:${localIdOf(open[0].id, 'Alert')}`;
  const up = await app.services.lineage.lineage(alertNode, LineageDirection.UPSTREAM, 2, 100);
  const kinds = up.nodes.map((n) => n.id.split(':')[0]);
  expect(kinds).toEqual(
    expect.arrayContaining([
      'Alert',
      'DriftReport',
      'ModelVersion',
      'DatasetSnapshot',
      'Deployment',
    ]),
  );
  expect(up.nodes.map((n) => n.id)).toContain(`DatasetSnapshot:${snapshotId}`);
  // The lineage's report and alert nodes resolve through node(id).
  const asNode = async (id: string) => (await gql.ok(NodeByIdDocument, { id })).node;
  expect(await asNode(open[0].id)).toMatchObject({ __typename: 'Alert' });
  expect(await asNode(open[0].reportId as string)).toMatchObject({ __typename: 'MonitorReport' });
  expect(await asNode(monitor.id)).toMatchObject({ __typename: 'Monitor' });
});

it('runs a monitor again only once its step has passed', async () => {
  const s = app.services.monitoring;
  clock.ms += 61_000;
  expect((await s.runDue()).length).toBeGreaterThan(0);
  expect(await s.runDue()).toEqual([]);
  clock.ms += 61_000;
  expect((await s.runDue()).length).toBeGreaterThan(0);
});

it('waits for enough labels, then alerts when AUC falls below the version’s own evaluation', async () => {
  const ws = gql.ws();
  const events = collect(ws, PerformanceEventsDocument, { endpoint: 'risk' });
  await new Promise((r) => setTimeout(r, 300));
  clock.ms += HOUR;
  const { createMonitor: monitor } = await gql.ok(CreateMonitorDocument, {
    input: {
      endpoint: 'risk',
      kind: 'PERFORMANCE',
      windowMs: 30 * 60_000,
      stepMs: 60_000,
      performance: { minLabels: 150, maxAucDrop: 0.05 },
    },
  });
  const served = await traffic(300, 0);
  // The world changed: the label now goes against the feature the model learned.
  const label = (a: number) => (a < 0 ? 1 : 0);
  for (const p of served.slice(0, 100))
    await app.services.serving.recordFeedback({ predictionId: p.id }, label(p.a));
  clock.ms += 1_000;
  const [thin] = (await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor;
  expect(thin).toMatchObject({ alerting: false, predictions: 300, labels: 100 });
  expect(thin.summary).toMatch(/not judged: 100 labels, fewer than 150/);

  for (const p of served.slice(100))
    await app.services.serving.recordFeedback({ predictionId: p.id }, label(p.a));
  // Meanwhile the registry judges a challenger against v1 on the challenger's own held-out
  // snapshot, where v1 does badly: that evaluation must not become v1's baseline.
  const s = app.services;
  const { done } = await s.datasets.build({
    name: 'acct-turned',
    featureRefs: ['acct@1:*'],
    spine: accounts.map((x) => ({ entityKey: x.key, ts: x.at + 1_000, label: label(x.a) })),
  });
  const turned = await done;
  v2 = await registerKnownModel(s, {
    model: 'risk',
    datasetId: turned.id,
    features: F,
    weights: [-1, 0],
    bias: 0,
  });
  await s.registry.validate(admin, v2.id, turned.id);
  await s.registry.setGates('risk', [
    { kind: 'AUC_VS_PRODUCTION', into: ModelState.STAGING, threshold: -0.005 },
  ]);
  await s.registry.transition(admin, v2.id, ModelState.STAGING, 'challenger');
  const v1Evaluations = (await s.registry.evaluationsOf([v1.id])).get(v1.id) ?? [];
  expect(v1Evaluations.map((e) => e.datasetId).sort()).toEqual([snapshotId, turned.id].sort());
  clock.ms += 1_000;
  const [judged] = (await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor;
  expect(judged).toMatchObject({ alerting: true, labels: 300 });
  expect((judged.metrics as { auc: number }).auc).toBeLessThan(0.2);
  expect((judged.reference as { auc: number }).auc).toBeGreaterThan(0.8);
  expect(judged.reasons[0]).toMatch(
    /^auc 0\.\d+ is 0\.\d+ below the reference evaluation's 0\.\d+ \(allowed 0\.05\)$/,
  );
  const [opened] = await events.next(1);
  expect(opened.performanceEvents).toMatchObject({
    status: 'OPENED',
    alert: { kind: 'PERFORMANCE' },
  });
  events.dispose();
  await ws.dispose();
});

it('clears the open alerts of a version that left service once a window passes without it', async () => {
  const s = app.services;
  const [monitor] = (await s.monitoring.monitorsOf('risk')).filter(
    (m) => m.kind === MonitorKind.PERFORMANCE,
  );
  const openOf = async (versionId: string) =>
    (await s.monitoring.alerts({ openOnly: true, versionId }, { limit: 100, backward: false }))
      .items;
  expect(await openOf(v1.id)).toHaveLength(1); // the AUC alert of the test before
  for (const to of [ModelState.SHADOW, ModelState.CANARY, ModelState.PRODUCTION])
    await s.registry.transition(admin, v2.id, to, 'replaces v1');
  clock.ms += 1_000;
  await s.monitoring.run(monitor.id); // v1's traffic is still in the window: judged, still bad
  expect(await openOf(v1.id)).toHaveLength(1);
  clock.ms += 31 * 60_000; // a whole window without v1, now ARCHIVED
  await s.monitoring.run(monitor.id);
  const [cleared] = (
    await s.monitoring.alerts(
      { openOnly: false, versionId: v1.id },
      { limit: 100, backward: false },
    )
  ).items.filter((a) => a.kind === AlertKind.PERFORMANCE);
  expect(cleared.clearedAt?.getTime()).toBe(clock.ms);
  expect(await openOf(v1.id)).toEqual([]);
});

it('dates the endpoint by the platform clock, which its canary and monitor timers read', async () => {
  const { deployment } = await app.services.deployments.status('risk');
  expect(deployment.createdAt.getTime()).toBe(deployedAt);
});

it('refuses a monitor it could not run, with a code', async () => {
  const bad = await gql.request(CreateMonitorDocument, {
    input: { endpoint: 'risk', kind: 'DATA_DRIFT', windowMs: 10, stepMs: 60_000 },
  });
  expect(bad.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  expect(bad.errors?.[0].message).toMatch(/windowMs must be 1 second to a year/);
  const none = await gql.request(CreateMonitorDocument, {
    input: { endpoint: 'nope', kind: 'DATA_DRIFT', windowMs: 60_000, stepMs: 60_000 },
  });
  expect(none.errors?.[0].extensions?.code).toBe('NOT_FOUND');
});
