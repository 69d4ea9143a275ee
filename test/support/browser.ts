import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium, installed by .ci/run; a browser is never downloaded. */
export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(__dirname, '../../test-artifacts');

/**
 * Headless Chromium with the flags this closed network needs (no background networking,
 * component updates, sync or QUIC). Playwright gives every launch a fresh, empty profile.
 */
export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A context whose requests may only go to `origin`: anything else is aborted and recorded,
 * so a test proves the page works offline (no CDN, no font service).
 */
export async function offlineContext(
  browser: Browser,
  origin: string,
): Promise<{ context: BrowserContext; external: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  // Loaded two-core machines: wait on conditions generously instead of failing early.
  context.setDefaultTimeout(45_000);
  const external: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:'))
      return route.continue();
    external.push(url);
    return route.abort();
  });
  return { context, external };
}

/** Opens the console at `pathname`, signing in with `key` on the way. */
export async function signIn(context: BrowserContext, origin: string, key: string, pathname = '/') {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${origin}${pathname}`);
  await page.fill('input[name=apiKey]', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=viewer]:not(:empty), [role=alert]').catch((e: Error) => {
    throw new Error(`${e.message}\n${problems.join('\n')}`);
  });
  return page;
}

/** Saves a screenshot under test-artifacts/ (git-ignored) for whoever reads the run. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
