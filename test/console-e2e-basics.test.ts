import { type Browser, type BrowserContext } from 'playwright-core';
import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { launchChromium, offlineContext, screenshot, signIn } from './support/browser';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The console in headless Chromium against a real api: signing in with a key, what a
 * VIEWER is not offered, GraphiQL at /graphql running a query with the key while nothing
 * outside the server can be reached, and the Features page's quarantine and replay.
 */
let app: TestApp;
let browser: Browser;
let origin: string;
let viewerKey: string;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  origin = app.url.replace('/graphql', '');
  const s = app.services;
  viewerKey = (await s.apiKeys.create(null, { name: 'watcher', role: Role.VIEWER })).token;
  await s.featureRegistry.createEntity({ name: 'airport', joinKeys: ['origin'] });
  const { version } = await s.featureRegistry.createView({
    name: 'airport_delays',
    entity: 'airport',
    source: 'flights',
    ttlSeconds: 86_400,
    allowedLatenessSeconds: 86_400,
    features: [
      {
        name: 'last_delay',
        type: FeatureType.FLOAT,
        source: 'delay',
        transform: { kind: 'IDENTITY' as const },
        aggregation: null,
        validation: { min: -120, max: 1800 },
      },
    ],
  });
  const now = Date.now();
  await s.ingestion.ingest(
    [version],
    [
      { entityKey: 'ORD', eventId: 'e1', eventTs: now - 60_000, fields: { delay: 12 } },
      { entityKey: 'ATL', eventId: 'e2', eventTs: now - 50_000, fields: { delay: 99_999 } },
      { entityKey: 'SFO', eventId: 'e3', eventTs: now - 40_000, fields: { delay: 'late' } },
    ],
    'test',
  );
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  for (const c of contexts) await c.close();
  await browser?.close();
  await app.stop();
});

async function context() {
  const c = await offlineContext(browser, origin);
  contexts.push(c.context);
  return c;
}

it('signs in with a pasted key, keeps it for the tab, and shows who is signed in', async () => {
  const { context: ctx, external } = await context();
  const page = await signIn(ctx, origin, app.adminToken);
  await page.waitForSelector('[data-testid=viewer]:has-text("ADMIN")');
  expect(await page.evaluate('sessionStorage.getItem("aether.apiKey")')).toBe(app.adminToken);
  // A reload keeps the session; a client route loads the app, not a 404.
  await page.goto(`${origin}/features`);
  await page.waitForSelector('[data-testid=viewer]:has-text("ADMIN")');
  await page.waitForSelector('text=airport_delays');
  await screenshot(page, 'console-signed-in');
  // A wrong key is told so, and may be replaced.
  const other = await signIn(ctx, origin, 'aek_nope_nope');
  await other.waitForSelector('text=UNAUTHENTICATED');
  expect(external).toEqual([]);
});

it('shows the quarantine with the broken rule and raw payload, and replays as an EDITOR+', async () => {
  const { context: ctx } = await context();
  const page = await signIn(ctx, origin, app.adminToken, '/features?view=airport_delays');
  const table = page.locator('[data-testid=quarantine]');
  await table.locator('text=OUT_OF_RANGE').waitFor();
  await table.locator('text=WRONG_TYPE').waitFor();
  await table.locator('code.payload:has-text("99999")').waitFor();
  await page.locator('[data-testid=view-versions] >> text=airport_delays@1').waitFor();
  await screenshot(page, 'console-features');
  // Replay the out-of-range record unchanged: quarantined again, by the same rule.
  await table.locator('tr:has-text("OUT_OF_RANGE") input[type=checkbox]').check();
  await page.click('button:has-text("Replay 1")');
  await page.waitForSelector('text=0 accepted, 1 quarantined again');
});

it('offers a VIEWER no action it may not take', async () => {
  const { context: ctx } = await context();
  const page = await signIn(ctx, origin, viewerKey, '/features?view=airport_delays');
  await page.waitForSelector('[data-testid=viewer]:has-text("VIEWER")');
  await page.locator('[data-testid=quarantine] >> text=OUT_OF_RANGE').waitFor();
  expect(await page.locator('button:has-text("Replay")').count()).toBe(0);
  expect(await page.locator('[data-testid=quarantine] input[type=checkbox]').count()).toBe(0);
});

it('GraphiQL at /graphql runs a query with the key, offline', async () => {
  const { context: ctx, external } = await context();
  // Signed in to the console, the same tab's GraphiQL starts with the key in its headers.
  const page = await signIn(ctx, origin, app.adminToken);
  await page.goto(`${origin}/graphql`);
  await page.waitForSelector('.graphiql-container');
  await page.waitForFunction(
    `document.querySelector('.graphiql-editor-tool')?.textContent?.includes('Authorization')`,
  );
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    `/"role":\\s*"ADMIN"/.test(document.querySelector('.graphiql-response')?.textContent ?? '')`,
  );
  await screenshot(page, 'console-graphiql');
  expect(external).toEqual([]);
});
