/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { onnx } from 'onnx-proto';
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { type DeploymentEvent } from '../src/domain/serving/deployment';
import { FEATURES_METADATA } from '../src/infra/onnx/export';
import { buildFloatDataset } from './support/datasets';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * The canary controller with real models: a deliberately slow canary and a deliberately
 * failing one are rolled back (registry state ROLLED_BACK, event published) while production
 * keeps answering; a healthy one steps up to all traffic and is promoted.
 */
let app: TestApp;
let datasetId: string;
const F = ['acct@1:a', 'acct@1:b'];
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };
let seq = 0;

async function promote(v: ModelVersion, to: ModelState): Promise<void> {
  const s = app.services.registry;
  await s.validate(admin, v.id, datasetId);
  const path = [ModelState.STAGING, ModelState.SHADOW, ModelState.CANARY, ModelState.PRODUCTION];
  for (const state of path.slice(0, path.indexOf(to) + 1))
    await s.transition(admin, v.id, state, 'test');
  // Routes follow registry moves through pub/sub, and at worst after their one-second cache;
  // a canary takes traffic once it is loaded and warmed up.
  await new Promise((r) => setTimeout(r, 1_100));
  if (to === ModelState.CANARY) await app.services.serving.prepare('score');
}

const known = (weights: number[], bytes?: Uint8Array) =>
  registerKnownModel(app.services, {
    model: 'score',
    datasetId,
    features: F,
    weights,
    bias: 0,
    bytes,
  });

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const io = (name: string, width: number): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } },
  },
});
const model = (name: string, nodes: onnx.INodeProto[], init: onnx.ITensorProto[]): Uint8Array =>
  onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      metadataProps: [{ key: FEATURES_METADATA, value: JSON.stringify(F) }],
      graph: {
        name,
        node: nodes,
        initializer: init,
        input: [io('features', 2)],
        output: [io('probability', 1)],
      },
    }),
  ).finish();
const ints = (name: string, values: number[]): onnx.ITensorProto => ({
  name,
  dims: [values.length],
  dataType: INT64,
  int64Data: values,
});
const axis = (i: number): onnx.IAttributeProto => ({
  name: 'axis',
  type: onnx.AttributeProto.AttributeType.INT,
  i,
});

/**
 * Deliberately slow whatever the machine's load: a Loop of 30,000 additions (about 28 ms a
 * call here) whose result is multiplied by zero, so it answers a constant 0.5.
 */
function slowModel(): Uint8Array {
  const scalar = (name: string, elemType: number): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType, shape: { dim: [] } } },
  });
  const one = (name: string): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  const BOOL = onnx.TensorProto.DataType.BOOL;
  const body: onnx.IGraphProto = {
    name: 'body',
    node: [
      { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] },
      { opType: 'Add', input: ['v_in', 'inc'], output: ['v_out'] },
    ],
    initializer: [{ name: 'inc', dims: [1], dataType: FLOAT, floatData: [1] }],
    input: [scalar('iter', INT64), scalar('cond_in', BOOL), one('v_in')],
    output: [scalar('cond_out', BOOL), one('v_out')],
  };
  return model(
    'slow',
    [
      {
        opType: 'Loop',
        input: ['M', 'cond', 'v0'],
        output: ['vfinal'],
        attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
      },
      { opType: 'Gather', input: ['features', 'c0'], output: ['a'], attribute: [axis(1)] },
      { opType: 'Mul', input: ['a', 'zero'], output: ['za'] },
      { opType: 'Mul', input: ['vfinal', 'zero'], output: ['zv'] },
      { opType: 'Add', input: ['za', 'zv'], output: ['s'] },
      { opType: 'Sigmoid', input: ['s'], output: ['probability'] },
    ],
    [
      { name: 'M', dims: [], dataType: INT64, int64Data: [30_000] },
      { name: 'cond', dims: [], dataType: BOOL, int32Data: [1] },
      { name: 'v0', dims: [1], dataType: FLOAT, floatData: [0] },
      ints('c0', [0]),
      { name: 'zero', dims: [1], dataType: FLOAT, floatData: [0] },
    ],
  );
}

/** Looks feature b up in a 16-entry table: fine for b in [0, 16), a runtime error beyond. */
function failingModel(): Uint8Array {
  return model(
    'failing',
    [
      { opType: 'Gather', input: ['features', 'c1'], output: ['b'], attribute: [axis(1)] },
      {
        opType: 'Cast',
        input: ['b'],
        output: ['idx'],
        attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: INT64 }],
      },
      { opType: 'Gather', input: ['table', 'idx'], output: ['v'] },
      { opType: 'Sigmoid', input: ['v'], output: ['probability'] },
    ],
    [
      ints('c1', [1]),
      { name: 'table', dims: [16], dataType: FLOAT, floatData: new Array<number>(16).fill(0.5) },
    ],
  );
}

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', CANARY_INTERVAL_MS: '0' },
  });
  const s = app.services;
  const T0 = Date.now() - 60_000;
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 40 }, (_, i) => ({
      entityKey: `u${i}`,
      at: T0,
      values: { a: i % 3, b: i % 2 },
      label: i % 2,
    })),
  });
  datasetId = snapshot.id;
  await promote(await known([1, 0]), ModelState.PRODUCTION);
  await s.serving.create(admin, {
    endpoint: 'score',
    model: 'score',
    maxWaitUs: 0,
    warmupRequests: 3,
    canaryShare: 0.5,
    canaryPolicy: {
      steps: [0.5, 1],
      stepMs: 0,
      windowMs: 60_000,
      maxErrorRateDelta: 0.05,
      maxP99Ratio: 3,
      minSamples: 20,
    },
  });
}, 60_000);

afterAll(() => app.stop());

/** Sequential requests from distinct keys; failures are counted, not thrown. */
async function traffic(
  n: number,
  row: Record<string, number>,
): Promise<{ versions: number[]; failures: number }> {
  const versions: number[] = [];
  let failures = 0;
  for (let i = 0; i < n; i++) {
    try {
      const r = await app.services.serving.predict('score', `k${seq++}`, [], [row]);
      versions.push(r[0].version.version);
    } catch {
      failures++;
    }
  }
  return { versions, failures };
}

async function events(run: () => Promise<void>): Promise<DeploymentEvent[]> {
  const sub = app.services.serving.deploymentEvents('score');
  await sub.ready;
  const got: DeploymentEvent[] = [];
  const reading = (async () => {
    for await (const e of sub) got.push(e);
  })();
  await run();
  await new Promise((r) => setTimeout(r, 200));
  await sub.close();
  await reading;
  return got;
}

it('rolls back a slow canary while production keeps answering', async () => {
  const slow = await known([0, 0], slowModel());
  await promote(slow, ModelState.CANARY);
  // Enough for a p99 on each side (at least 100 samples: see judgeCanary).
  const t = await traffic(240, { [F[0]]: 1, [F[1]]: 1 });
  expect(t.failures).toBe(0);
  expect(t.versions).toContain(slow.version);
  const got = await events(async () => {
    const [review] = await app.services.serving.reviewCanaries();
    expect(review.action).toBe('ROLLBACK');
    expect(review.reason).toMatch(/^p99 .* ms vs baseline .* ms \(allowed ×3\)$/);
  });
  expect(got.map((e) => e.kind)).toEqual(['CANARY_ROLLED_BACK']);
  expect((await app.services.registry.version(slow.id)).state).toBe(ModelState.ROLLED_BACK);
  const after = await traffic(20, { [F[0]]: 1, [F[1]]: 1 });
  expect(new Set(after.versions)).toEqual(new Set([1]));
});

it('rolls back a failing canary', async () => {
  const failing = await known([0, 0], failingModel());
  await promote(failing, ModelState.CANARY);
  const t = await traffic(60, { [F[0]]: 1, [F[1]]: 99 });
  expect(t.failures).toBeGreaterThan(10);
  const [review] = await app.services.serving.reviewCanaries();
  expect(review).toMatchObject({ action: 'ROLLBACK' });
  expect(review.reason).toMatch(/^error rate/);
  expect((await app.services.registry.version(failing.id)).state).toBe(ModelState.ROLLED_BACK);
});

it('steps a healthy canary up to all traffic, then promotes it', async () => {
  const good = await known([0.5, 0.5]);
  await promote(good, ModelState.CANARY);
  await traffic(240, { [F[0]]: 1, [F[1]]: 1 });
  const got = await events(async () => {
    expect((await app.services.serving.reviewCanaries())[0]).toMatchObject({ action: 'STEP' });
    const all = await traffic(30, { [F[0]]: 1, [F[1]]: 1 });
    expect(new Set(all.versions)).toEqual(new Set([good.version]));
    expect((await app.services.serving.reviewCanaries())[0]).toMatchObject({ action: 'PROMOTE' });
  });
  expect(got.map((e) => [e.kind, e.share])).toEqual([
    ['CANARY_STEP', 1],
    ['CANARY_PROMOTED', 1],
  ]);
  const m = await app.services.registry.model('score');
  expect(m.productionVersionId).toBe(good.id);
});
