/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { type Browser, type BrowserContext } from 'playwright-core';
import { MonitorKind } from '../src/domain/monitoring/monitor';
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { Rng } from '../src/domain/training/rng';
import { launchChromium, offlineContext, screenshot, signIn } from './support/browser';
import { buildFloatDataset } from './support/datasets';
import { until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * Serving and monitoring in the console, live: a canary's share moves on the page as the
 * controller steps it up (deploymentEvents, no reload), a drift alert appears as the monitor
 * raises it and is acknowledged from the page, its report shows both windows' histograms;
 * and the lineage explorer walks from a model version up to its feature view version and
 * back down to the deployment that serves it.
 */
const F = ['acct@1:a', 'acct@1:b'];
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };
let app: TestApp;
let browser: Browser;
let context: BrowserContext;
let external: string[];
let origin: string;
let datasetId: string;
let seq = 0;
const rng = new Rng(11);

async function promote(v: ModelVersion, to: ModelState): Promise<void> {
  const s = app.services.registry;
  await s.validate(admin, v.id, datasetId);
  const path = [ModelState.STAGING, ModelState.SHADOW, ModelState.CANARY, ModelState.PRODUCTION];
  for (const state of path.slice(0, path.indexOf(to) + 1))
    await s.transition(admin, v.id, state, 'test');
}

/** Sequential requests from distinct keys, a ~ N(aMean, 1), b ~ N(5, 2). */
async function traffic(n: number, aMean = 0): Promise<void> {
  for (let i = 0; i < n; i++)
    await app.services.serving.predict(
      'score',
      `k${seq++}`,
      [],
      [{ [F[0]]: aMean + rng.normal(), [F[1]]: 5 + 2 * rng.normal() }],
    );
}

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', CANARY_INTERVAL_MS: '0', MONITOR_INTERVAL_MS: '0' },
  });
  origin = app.url.replace('/graphql', '');
  const s = app.services;
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 600 }, (_, i) => {
      const a = rng.normal();
      return {
        entityKey: `u${i}`,
        at: Date.now() - 2 * 3_600_000,
        values: { a, b: 5 + 2 * rng.normal() },
        label: a + 0.5 * rng.normal() > 0 ? 1 : 0,
      };
    }),
  });
  datasetId = snapshot.id;
  const known = (weights: number[]) =>
    registerKnownModel(s, { model: 'score', datasetId, features: F, weights, bias: 0 });
  await promote(await known([1, 0]), ModelState.PRODUCTION);
  await s.deployments.create(admin, {
    endpoint: 'score',
    model: 'score',
    maxWaitUs: 0,
    warmupRequests: 3,
    canaryShare: 0.25,
    canaryPolicy: {
      steps: [0.25, 0.5, 1],
      stepMs: 0,
      windowMs: 600_000,
      maxErrorRateDelta: 0.05,
      // Latency is not what this test is about; a loaded machine must not roll it back.
      maxP99Ratio: 1_000,
      minSamples: 20,
    },
  });
  await traffic(20);
  await promote(await known([0.5, 0.5]), ModelState.CANARY);
  // Routes follow registry moves through pub/sub; the canary serves once warmed up.
  await until(async () => {
    await s.deployments.prepare('score');
    const st = await s.deployments.status('score');
    return st.versions.some((v) => v.role === 'CANARY' && v.ready) ? true : undefined;
  }, 30_000);
  browser = await launchChromium();
  ({ context, external } = await offlineContext(browser, origin));
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await app.stop();
});

it("shows a canary's ramp moving live as the controller steps it up", async () => {
  const page = await signIn(context, origin, app.adminToken, '/deployments?endpoint=score');
  const share = page.locator('[data-testid=canary-share]');
  await page.locator('[data-testid=canary-share]:text-is("25.0 %")').waitFor();
  const step = async (expect: string) => {
    await until(async () => {
      await traffic(40);
      const [r] = await app.services.canary.review();
      return r.action === expect ? r : undefined;
    }, 60_000);
  };
  await step('STEP');
  await page.locator('[data-testid=canary-share]:text-is("50.0 %")').waitFor();
  await page.locator('[data-testid=deployment-events] li[data-kind=CANARY_STEP]').waitFor();
  await page.locator('[data-testid=served-versions] tr[data-role=CANARY]').waitFor();
  await screenshot(page, 'console-deployments-canary');
  await step('STEP');
  await page.locator('[data-testid=canary-share]:text-is("100.0 %")').waitFor();
  await step('PROMOTE');
  await page.locator('[data-testid=deployment-events] li[data-kind=CANARY_PROMOTED]').waitFor();
  // The promoted version now serves as production, and the canary ramp is gone.
  await page
    .locator('[data-testid=served-versions] tr[data-role=PRODUCTION]:has-text("score@2")')
    .waitFor();
  expect(await share.count()).toBe(0);
  expect(external).toEqual([]);
}, 180_000);

it('shows a drift alert as it opens, acknowledges it, and draws both histograms', async () => {
  const monitor = await app.services.monitoring.create(admin, {
    endpoint: 'score',
    kind: MonitorKind.DATA_DRIFT,
    windowMs: 600_000,
    stepMs: 60_000,
  });
  const page = await signIn(context, origin, app.adminToken, '/monitoring');
  await page.locator('text=No alerts.').waitFor();
  await traffic(300, 0.9);
  await app.services.monitoring.run(monitor.id);
  // No reload: the alert arrives on driftEvents.
  const row = page.locator('[data-testid=alerts] tr[data-status=OPEN]:has-text("DATA_DRIFT")');
  await row.waitFor();
  await row.locator('button:has-text("Acknowledge")').click();
  await page.locator('[data-testid=alerts] tr[data-status=ACKNOWLEDGED]').waitFor();
  await page.locator('[data-testid=alerts] tr[data-status=ACKNOWLEDGED]').click();
  const features = page.locator('[data-testid=drift-features]');
  await features.locator('.feature.drifted:has-text("acct@1:a")').waitFor();
  expect(await features.locator('[data-testid=histogram]').count()).toBe(2);
  expect(await features.locator('.feature.drifted').count()).toBe(1);
  await screenshot(page, 'console-monitoring');
}, 120_000);

it('walks the lineage from a model version to its feature view and down to its deployment', async () => {
  const page = await signIn(context, origin, app.adminToken, '/lineage');
  await page.fill('input[name=lineageSearch]', 'score@2');
  await page.click('[data-testid=search-results] a:has-text("score@2")');
  const graph = page.locator('[data-testid=lineage-graph]');
  await graph.locator('.react-flow__node:has(.k-ModelVersion):has-text("score@2")').waitFor();
  // Up to the feature view version the model reads…
  await graph.locator('.react-flow__node:has(.k-FeatureViewVersion)').click();
  await page.locator('[data-testid=node-details]:has-text("acct@1")').waitFor();
  await page.click('button:has-text("Walk from here")');
  await graph.locator('.react-flow__node:has(.root):has-text("acct@1")').waitFor();
  // …and back down to the deployment serving what was trained on it.
  await graph.locator('.react-flow__node:has(.k-Deployment)').click();
  await page
    .locator('[data-testid=node-details] dt:text-is("Deployment") + dd:text-is("score")')
    .waitFor();
  await screenshot(page, 'console-lineage');
  // Impact: everything that depends on the feature view version, highlighted.
  await graph.locator('.react-flow__node:has(.k-FeatureViewVersion)').click();
  await page.click('button:has-text("What depends on this?")');
  await page.locator('[data-testid=impact-summary]:has-text("depend on acct@1")').waitFor();
  expect(await graph.locator('.lnode.impacted').count()).toBeGreaterThan(3);
  await screenshot(page, 'console-lineage-impact');
}, 120_000);
