/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Permission, Role } from '../src/domain/auth/role';
import { bestTrial, Direction, ParamKind, SamplerKind } from '../src/domain/hpo/study';
import { ModelState } from '../src/domain/registry/model';
import { Rng } from '../src/domain/training/rng';
import { RunStatus } from '../src/domain/training/training-run';
import { toGlobalId } from '../src/schema/node.types';
import { launchChromium, offlineContext, screenshot, signIn } from './support/browser';
import { buildFloatDataset } from './support/datasets';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Training and the registry in the console, with a real gpu-runner process: a run's loss
 * curve grows on the page epoch by epoch while it trains (the trainer ends an epoch only
 * when the test lets it), runs are compared side by side, and a model version is validated
 * and promoted through the gates by clicking, a refused transition showing the server's
 * reason; a hyperparameter study's trials end on the page one by one with its best value.
 */
let app: TestApp;
let browser: Browser;
let context: BrowserContext;
let external: string[];
let runner: RunnerProcess;
let origin: string;
let datasetId: string;
const gateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-paced-'));
// The runner runs trainers as an unprivileged user (docs/adr/0019): it must see the gates.
fs.chmodSync(gateDir, 0o755);

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  origin = app.url.replace('/graphql', '');
  const s = app.services;
  const rng = new Rng(5);
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 300 }, (_, i) => {
      const a = rng.normal();
      return {
        entityKey: `u${i}`,
        at: Date.now() - 3_600_000,
        values: { a, b: rng.normal() },
        label: a + 0.5 * rng.normal() > 0 ? 1 : 0,
      };
    }),
  });
  datasetId = snapshot.id;
  const key = (await s.apiKeys.create(null, { name: 'r', role: Role.RUNNER })).token;
  runner = startRunner(app.url, key, {
    RUNNER_NAME: 'console',
    GPU_RUNNER_GPUS: '',
    RUNNER_POLL_MS: '100',
    RUNNER_HARDWARE_MS: '200',
  });
  browser = await launchChromium();
  ({ context, external } = await offlineContext(browser, origin));
}, 120_000);

afterAll(async () => {
  for (let e = 1; e <= 6; e++) fs.writeFileSync(path.join(gateDir, `epoch-${e}`), '');
  await context?.close();
  await browser?.close();
  runner.child.kill('SIGKILL');
  await runner.exited;
  await app.stop();
  fs.rmSync(gateDir, { recursive: true, force: true });
});

/** A trainer that ends epoch n only once `<gate>/epoch-<n>` exists. */
const PACED = {
  name: 'paced',
  argv: [process.execPath, path.resolve(__dirname, 'fixtures/console/paced-trainer.mjs')],
};

const points = (page: Page) =>
  page.locator('[data-testid=loss-chart]').getAttribute('data-points').then(Number);

it("watches a run's loss curve grow while it trains", async () => {
  const run = await app.services.training.submit({
    experiment: 'delay',
    command: PACED,
    datasetId,
    hyperparameters: { gate: gateDir, epochs: 6 },
  });
  const id = toGlobalId('Run', run.id);
  const page = await signIn(context, origin, app.adminToken, `/runs?run=${encodeURIComponent(id)}`);
  await page.locator(`tr[data-run="${id}"][data-status=RUNNING]`).waitFor();
  for (let epoch = 1; epoch <= 5; epoch++) {
    fs.writeFileSync(path.join(gateDir, `epoch-${epoch}`), '');
    // The page learns of each epoch from runProgress: no reload, no polling.
    await page.locator(`[data-testid=loss-chart][data-points="${epoch}"]`).waitFor();
    await page.locator(`[data-testid=epochs-done]:text-is("${epoch}")`).waitFor();
  }
  expect(await points(page)).toBe(5);
  await page.locator(`tr[data-run="${id}"] .pulse`).waitFor();
  await screenshot(page, 'console-runs-live');
  fs.writeFileSync(path.join(gateDir, 'epoch-6'), '');
  await page.locator(`tr[data-run="${id}"][data-status=SUCCEEDED]`).waitFor();
  await page.locator('[data-testid=loss-chart][data-points="6"]').waitFor();
}, 180_000);

it('compares runs side by side and keeps the columns chosen', async () => {
  const other = await app.services.training.submit({
    experiment: 'delay',
    builtinTrainer: 'logistic_regression',
    datasetId,
    hyperparameters: { epochs: 10 },
  });
  await until(async () => {
    const r = await app.services.training.get(other.id);
    return r.status === RunStatus.SUCCEEDED ? r : undefined;
  }, 90_000);
  const page = await signIn(context, origin, app.adminToken, '/runs');
  const rows = page.locator('[data-testid=runs-table] tbody tr[data-status=SUCCEEDED]');
  await rows.nth(1).waitFor();
  await rows.nth(0).locator('input[type=checkbox]').check();
  await rows.nth(1).locator('input[type=checkbox]').check();
  await page.click('button:has-text("Compare 2")');
  const table = page.locator('[data-testid=compare-table]');
  await table.locator('th:has-text("val_auc")').waitFor();
  expect(await table.locator('tbody tr').count()).toBe(2);
  // Columns chosen stay chosen after a reload.
  await page.click('button:has-text("Columns")');
  await page.locator('[data-testid=column-chooser] label:has-text("gpus") input').uncheck();
  await page.reload();
  await page.locator('[data-testid=runs-table] th:has-text("experiment")').waitFor();
  expect(await page.locator('[data-testid=runs-table] th:has-text("gpus")').count()).toBe(0);
  await screenshot(page, 'console-runs-compare');
}, 120_000);

it('validates and promotes a version through the gates; a refused move shows why', async () => {
  const s = app.services;
  const submitted = await s.training.submit({
    experiment: 'risk',
    builtinTrainer: 'logistic_regression',
    datasetId,
    hyperparameters: { epochs: 20 },
    registerAs: 'risk',
  });
  await until(async () => {
    const r = await s.training.get(submitted.id);
    return r.status === RunStatus.SUCCEEDED && r.modelVersionId ? r : undefined;
  }, 90_000);
  // A second version, so that the page has a metric to plot across versions.
  const second = await s.training.submit({
    experiment: 'risk',
    builtinTrainer: 'logistic_regression',
    datasetId,
    hyperparameters: { epochs: 5 },
    registerAs: 'risk',
  });
  await until(async () => {
    const r = await s.training.get(second.id);
    return r.status === RunStatus.SUCCEEDED && r.modelVersionId ? r : undefined;
  }, 90_000);
  await s.registry.setGates('risk', [
    { into: ModelState.PRODUCTION, kind: 'MIN_METRIC', metric: 'auc', threshold: 0.999 },
  ]);
  const page = await signIn(context, origin, app.adminToken, '/models?model=risk');
  const row = page.locator('[data-testid=versions-table] tr[data-version="1"]');
  await row.locator('button:has-text("Validate")').click();
  await page.locator('tr[data-version="1"][data-state=VALIDATED]').waitFor();
  for (const to of ['STAGING', 'SHADOW', 'CANARY']) {
    await row.locator(`button[data-to=${to}]`).click();
    await page.locator(`tr[data-version="1"][data-state=${to}]`).waitFor();
  }
  await row.locator('button[data-to=PRODUCTION]').click();
  const refusal = page.locator('[role=alert]:has-text("GATE_FAILED")');
  await refusal.waitFor();
  expect(await refusal.textContent()).toMatch(/CONFLICT \(GATE_FAILED\): .*auc .* 0\.999/);
  await screenshot(page, 'console-models-refused');
  await s.registry.setGates('risk', [
    { into: ModelState.PRODUCTION, kind: 'MIN_METRIC', metric: 'auc', threshold: 0.6 },
  ]);
  await row.locator('button[data-to=PRODUCTION]').click();
  await page.locator('tr[data-version="1"][data-state=PRODUCTION]').waitFor();
  await page.locator('[data-testid=versions-chart]').waitFor();
  await row.locator('button:has-text("v1")').click();
  await page.locator('text=gate MIN_METRIC auc').waitFor();
  await screenshot(page, 'console-models');
  expect(external).toEqual([]);
}, 180_000);

it("follows a study's trials live to its best value, opens a trial's run, and cancels a study", async () => {
  const s = app.services;
  const editor = { keyId: 'console', name: 'console', role: Role.EDITOR };
  const study = await s.studies.create(
    {
      name: 'console-search',
      builtinTrainer: 'logistic_regression',
      datasetId,
      hyperparameters: { epochs: 3 },
      space: [{ name: 'learningRate', kind: ParamKind.FLOAT, low: 0.001, high: 0.5, log: true }],
      objective: { metric: 'val_loss', direction: Direction.MINIMIZE },
      sampler: SamplerKind.RANDOM,
      budget: { trials: 3 },
      seed: 3,
    },
    editor,
  );
  const id = toGlobalId('Study', study.id);
  const page = await signIn(
    context,
    origin,
    app.adminToken,
    `/studies?study=${encodeURIComponent(id)}`,
  );
  // Each trial ends on the page as its run does (studyProgress): no reload, no polling.
  const trial = (n: number, state: string) =>
    page.locator(`[data-testid=trials-table] tr[data-trial="${n}"][data-state=${state}]`);
  for (let n = 0; n < 3; n++) await trial(n, 'COMPLETE').waitFor({ timeout: 90_000 });
  await page.locator('[data-testid=study-chart][data-points="3"]').waitFor();
  await page.locator('.card-head .badge:text-is("COMPLETED")').waitFor();
  const best = bestTrial(await s.studies.trials(study.id), Direction.MINIMIZE);
  expect(await page.locator('[data-testid=best-value]').textContent()).toBe(
    (best?.value as number).toPrecision(4),
  );
  await page.locator(`[data-testid=studies-table] tr[data-study="${id}"]`).waitFor();
  await screenshot(page, 'console-studies');
  // The Optuna journal downloads with the tab's key.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('button:has-text("Optuna journal")'),
  ]);
  expect(download.suggestedFilename()).toBe('console-search.optuna-journal.log');
  const lines = fs
    .readFileSync((await download.path()) as string, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { op_code: number; study_name?: string });
  expect(lines[0]).toMatchObject({ op_code: 0, study_name: 'console-search' });
  await trial(0, 'COMPLETE').locator('button').click();
  await page.waitForURL(/\/runs\?run=/);
  await page.locator('[data-testid=loss-chart][data-points="3"]').waitFor();

  // A trial that waits on a gate nobody opens, so it is surely running when cancelled.
  const closed = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-closed-'));
  fs.chmodSync(closed, 0o755);
  const long = await s.studies.create(
    {
      name: 'console-cancel',
      command: PACED,
      datasetId,
      hyperparameters: { gate: closed, epochs: 3 },
      space: [{ name: 'lr', kind: ParamKind.FLOAT, low: 0.01, high: 1 }],
      objective: { metric: 'val_loss', direction: Direction.MINIMIZE },
      sampler: SamplerKind.RANDOM,
      budget: { trials: 5 },
    },
    { ...editor, permissions: [Permission.COMMAND_TRAINERS] },
  );
  const longId = toGlobalId('Study', long.id);
  await page.goto(`${origin}/studies?study=${encodeURIComponent(longId)}`);
  await trial(0, 'RUNNING').waitFor();
  await page.click('.card-head button:has-text("Cancel")');
  await page.locator('.card-head .badge:text-is("CANCELLED")').waitFor();
  await trial(0, 'CANCELLED').waitFor({ timeout: 30_000 });
  expect((await s.studies.get(long.id)).status).toBe('CANCELLED');
  fs.rmSync(closed, { recursive: true, force: true });
  expect(external).toEqual([]);
}, 180_000);
