import fc from 'fast-check';
import fs from 'node:fs';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createConsoleRoute } from '../src/app/console-route';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The console's files at `/`: client routes get the app, hashed assets are cached for ever,
 * and no request path — encoded, doubled, back-slashed or NUL-laden — reads a byte outside
 * the build folder. Then the same through the real api, with GraphiQL at /graphql.
 */
const SECRET = 'top-secret-outside-the-build';
let root: string;
let server: http.Server;
let base: string;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-console-'));
  const dist = path.join(root, 'site', 'dist');
  fs.mkdirSync(path.join(dist, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>console</title>');
  fs.writeFileSync(path.join(dist, 'graphiql.html'), '<!doctype html><title>graphiql</title>');
  fs.writeFileSync(path.join(dist, 'assets', 'main-abc123.js'), 'console.log("hi");'.repeat(50));
  // Targets a traversal would want: beside the build, above it, and a link out of it.
  fs.writeFileSync(path.join(root, 'site', 'secret.txt'), SECRET);
  fs.writeFileSync(path.join(root, 'secret.txt'), SECRET);
  fs.symlinkSync(path.join(root, 'secret.txt'), path.join(dist, 'assets', 'link.txt'));
  const route = createConsoleRoute({ production: false, dir: dist });
  server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0];
    void (p === '/graphql' && route.wantsGraphiQL(req)
      ? route.graphiql(req, res)
      : route.serve(req, res, p));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(root, { recursive: true, force: true });
});

/** A raw request: fetch would normalize `..` and `%2e%2e` away before sending. */
function raw(
  pathAndQuery: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/`, { path: pathAndQuery, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

it('serves the app for client routes and caches hashed assets for ever', async () => {
  const html = { accept: 'text/html' };
  for (const p of ['/', '/lineage', '/runs?run=x', '/models']) {
    const r = await raw(p, html);
    expect(r.status).toBe(200);
    expect(r.body).toContain('<title>console</title>');
    expect(r.headers['cache-control']).toBe('no-cache');
  }
  const asset = await raw('/assets/main-abc123.js', { 'accept-encoding': 'gzip' });
  expect(asset.status).toBe(200);
  expect(asset.headers['content-type']).toMatch(/^text\/javascript/);
  expect(asset.headers['content-encoding']).toBe('gzip');
  expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  // An asset of an older build, or a non-browser client's unknown path: 404, not the app.
  expect((await raw('/assets/main-old999.js', html)).status).toBe(404);
  expect((await raw('/nope')).status).toBe(404);
  expect((await raw('/graphql', html)).body).toContain('<title>graphiql</title>');
});

it('never reads outside the build folder, whatever the path', async () => {
  const known = [
    '/../secret.txt',
    '/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2e%2e%2fsecret.txt',
    '/assets/..%2f..%2fsecret.txt',
    '/assets/%2e%2e/%2e%2e/secret.txt',
    '/..%5c..%5csecret.txt',
    '/assets/link.txt',
    '/%00/../secret.txt',
    '/%E0%A4%A',
    '//secret.txt',
    '/assets/../../secret.txt',
  ];
  for (const p of known) {
    const r = await raw(p, { accept: 'text/html' });
    expect(r.body).not.toContain(SECRET);
    expect([200, 400, 404]).toContain(r.status);
  }
  const segment = fc.constantFrom(
    '..',
    '.',
    '%2e%2e',
    '%2E%2E',
    '.%2e',
    '%252e%252e',
    '%2f',
    '%5c',
    '\\..',
    '%00',
    'assets',
    'secret.txt',
    'site',
    'dist',
    'link.txt',
    '',
  );
  await fc.assert(
    fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 7 }), async (parts) => {
      const r = await raw(`/${parts.join('/')}`, { accept: 'text/html' });
      expect(r.body).not.toContain(SECRET);
    }),
    { numRuns: 300 },
  );
});

describe('through the api', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  });
  afterAll(() => app.stop());

  it('serves the built console at / and its GraphiQL to browsers at /graphql', async () => {
    const origin = app.url.replace('/graphql', '');
    const index = await fetch(`${origin}/lineage`, { headers: { accept: 'text/html' } });
    expect(index.status).toBe(200);
    const html = await index.text();
    expect(html).toContain('<div id="root">');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
    const js = await fetch(`${origin}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    const ide = await fetch(app.url, { headers: { accept: 'text/html' } });
    expect(ide.status).toBe(200);
    expect(await ide.text()).toContain('id="graphiql"');
    // Not Apollo's landing page, whose script comes from a CDN.
    expect(await (await fetch(app.url, { headers: { accept: 'text/html' } })).text()).not.toMatch(
      /apollographql|cdn\./i,
    );
    // API clients are unaffected: a query still needs a key, an unknown path is a 404.
    const anonymous = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":"{ viewer { name } }"}',
    });
    expect(
      ((await anonymous.json()) as { errors: { extensions: { code: string } }[] }).errors[0]
        .extensions.code,
    ).toBe('UNAUTHENTICATED');
    expect((await fetch(`${origin}/nope`)).status).toBe(404);
  });
});
