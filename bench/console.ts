import { createClient } from 'graphql-ws';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { ModelState } from '../src/domain/registry/model';
import { launchChromium, offlineContext, signIn } from '../test/support/browser';
import { buildFloatDataset } from '../test/support/datasets';
import { registerKnownModel } from '../test/support/trained-model';
import { median, percentile, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * console: the web console in headless Chromium against a real api, same run:
 * - lineage_1000_render_ms: from asking for the impact graph of a node with 1,000 nodes
 *   downstream (a client-side navigation) to all 1,000 drawn and laid out, median of 7;
 *   baseline: the same lineage query alone over HTTP from this process;
 * - event_to_screen_p99_ms: from sending a mutation (a model version's transition, over
 *   HTTP from this process) to its modelEvents event shown on the Models page; baseline:
 *   the same event reaching a plain graphql-ws client in this process;
 * - initial_js_kb_gz: the gzipped JavaScript a browser loads to sign in and draw the first
 *   page (the lineage explorer), and the sign-in page's alone.
 */
const RENDER_RUNS = 7;
const admin = { keyId: 'bench', name: 'bench', role: 'ADMIN' as never };
const LINEAGE = `query L($id: ID!) { lineage(id: $id, direction: DOWNSTREAM, depth: 12, limit: 5000) { nodes { id kind label depth } edges { from to relation } } }`;
const TRANSITION = `mutation T($id: ID!, $to: ModelState!, $reason: String!) { transitionModelVersion(id: $id, to: $to, reason: $reason) { state } }`;

export async function main(): Promise<void> {
  const events = Math.max(10, Math.round(100 * scale()));
  const p = await startBenchPlatform('console', {
    FEATURE_STREAM_CONSUMER: 'off',
    CANARY_INTERVAL_MS: '0',
    MONITOR_INTERVAL_MS: '0',
    AUTOSCALE_INTERVAL_MS: '0',
  });
  const browser = await launchChromium();
  try {
    const origin = p.app.url.replace('/graphql', '');
    const gid = (node: string) => Buffer.from(node).toString('base64url');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${p.adminToken}` };
    const gql = async (query: string, variables: Record<string, unknown>) => {
      const r = (await (
        await fetch(p.app.url, {
          method: 'POST',
          headers,
          body: JSON.stringify({ query, variables }),
        })
      ).json()) as { data?: unknown; errors?: unknown[] };
      if (r.errors?.length) throw new Error(JSON.stringify(r.errors));
      return r.data;
    };

    // An impact graph of exactly 1,000 nodes below one feature view version: 100 snapshots,
    // 300 runs, 300 model versions, 299 deployments (straight into the lineage tables).
    const ds = p.app.db.dataSource;
    await ds.query(
      `INSERT INTO lineage_node (id, kind, label)
       SELECT 'FeatureViewVersion:root', 'FeatureViewVersion', 'airport_delays@1'
       UNION ALL SELECT 'DatasetSnapshot:d' || i, 'DatasetSnapshot', 'delays-' || i FROM generate_series(1, 100) i
       UNION ALL SELECT 'Run:r' || i, 'Run', 'delay / gbdt #' || i FROM generate_series(1, 300) i
       UNION ALL SELECT 'ModelVersion:m' || i, 'ModelVersion', 'flight-delay@' || i FROM generate_series(1, 300) i
       UNION ALL SELECT 'Deployment:x' || i, 'Deployment', 'endpoint-' || i FROM generate_series(1, 299) i`,
    );
    await ds.query(
      `INSERT INTO lineage_edge (from_node, to_node, relation)
       SELECT 'FeatureViewVersion:root', 'DatasetSnapshot:d' || i, 'builds' FROM generate_series(1, 100) i
       UNION ALL SELECT 'DatasetSnapshot:d' || (1 + (i - 1) / 3), 'Run:r' || i, 'trains' FROM generate_series(1, 300) i
       UNION ALL SELECT 'Run:r' || i, 'ModelVersion:m' || i, 'produces' FROM generate_series(1, 300) i
       UNION ALL SELECT 'ModelVersion:m' || i, 'Deployment:x' || i, 'deployed' FROM generate_series(1, 299) i`,
    );
    const root = gid('FeatureViewVersion:root');
    const graph = (await gql(LINEAGE, { id: root })) as { lineage: { nodes: unknown[] } };
    if (graph.lineage.nodes.length !== 1_000)
      throw new Error(`impact graph has ${graph.lineage.nodes.length} nodes, not 1000`);

    // A model version to move back and forth between STAGING and SHADOW.
    const s = p.app.services;
    const snapshot = await buildFloatDataset(s, {
      view: 'acct',
      features: ['a', 'b'],
      rows: Array.from({ length: 40 }, (_, i) => ({
        entityKey: `u${i}`,
        at: Date.now() - 60_000,
        values: { a: i % 3, b: i % 2 },
        label: i % 2,
      })),
    });
    const v = await registerKnownModel(s, {
      model: 'bench',
      datasetId: snapshot.id,
      features: ['acct@1:a', 'acct@1:b'],
      weights: [1, 0],
      bias: 0,
    });
    await s.registry.validate(admin, v.id, snapshot.id);
    await s.registry.transition(admin, v.id, ModelState.STAGING, 'bench');
    const versionId = gid(`ModelVersion:${v.id}`);

    // The first page's JavaScript: sign in, then the lineage explorer is drawn.
    const first = await offlineContext(browser, origin);
    const scripts = new Map<string, number>();
    first.context.on('response', (r) => {
      if (r.request().resourceType() !== 'script') return;
      void r.body().then(
        (b) => scripts.set(r.url(), zlib.gzipSync(b, { level: 9 }).length),
        () => undefined,
      );
    });
    const fp = await first.context.newPage();
    await fp.goto(origin);
    await fp.waitForSelector('input[name=apiKey]');
    await fp.waitForLoadState('networkidle');
    const signinKb = [...scripts.values()].reduce((a, b) => a + b, 0) / 1024;
    await fp.fill('input[name=apiKey]', p.adminToken);
    await fp.click('button[type=submit]');
    await fp.waitForSelector('input[name=lineageSearch]');
    await fp.waitForLoadState('networkidle');
    const initialKb = [...scripts.values()].reduce((a, b) => a + b, 0) / 1024;
    if (first.external.length) throw new Error(`requests left the machine: ${first.external}`);
    await first.context.close();

    const { context } = await offlineContext(browser, origin);
    const page = await signIn(context, origin, p.adminToken, '/runs');

    // Impact graph: navigate in the app (as a click would), time until every node is drawn.
    const renders: number[] = [];
    for (let i = 0; i < RENDER_RUNS; i++) {
      // From the explorer showing a small graph (its code loaded), as a click on "What
      // depends on this?" would.
      await page.goto(`${origin}/lineage?node=${encodeURIComponent(gid('DatasetSnapshot:d1'))}`);
      await page.waitForSelector('[data-testid=lineage-graph] .react-flow__node');
      const ms = await page.evaluate(`new Promise((resolve) => {
        const t0 = performance.now();
        history.pushState(null, '', '/lineage?impact=' + encodeURIComponent(${JSON.stringify(root)}));
        dispatchEvent(new PopStateEvent('popstate'));
        const check = () => {
          const nodes = document.querySelectorAll('.react-flow__node');
          const drawn = nodes.length === 1000 &&
            getComputedStyle(nodes[nodes.length - 1]).visibility !== 'hidden' &&
            document.querySelectorAll('.react-flow__edge').length === 999;
          // One more frame: what was drawn has been painted.
          if (drawn) requestAnimationFrame(() => resolve(performance.now() - t0));
          else requestAnimationFrame(check);
        };
        check();
      })`);
      renders.push(ms as number);
    }
    const queries: number[] = [];
    for (let i = 0; i < RENDER_RUNS; i++) {
      const t0 = performance.now();
      await gql(LINEAGE, { id: root });
      queries.push(performance.now() - t0);
    }

    // Event to screen: each transition's reason is unique; the page notes when it shows it.
    await page.goto(`${origin}/models?model=bench`);
    await page.waitForSelector('[data-testid=versions-table]');
    await page.evaluate(`(() => {
      window.__seen = {};
      const list = document.querySelector('[data-testid=model-events]');
      new MutationObserver(() => {
        for (const li of list.querySelectorAll('li')) {
          const m = /bench-(\\d+)/.exec(li.textContent || '');
          if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = Date.now();
        }
      }).observe(list, { childList: true, subtree: true, characterData: true });
    })()`);
    const ws = createClient({
      url: p.app.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${p.adminToken}` },
    });
    const clientSeen = new Map<string, number>();
    await new Promise<void>((ready, fail) => {
      ws.on('connected', () => ready());
      ws.subscribe<{ modelEvents: { reason: string } }>(
        { query: 'subscription { modelEvents { reason } }' },
        {
          next: (e) => {
            const m = /bench-(\d+)/.exec(e.data?.modelEvents.reason ?? '');
            if (m) clientSeen.set(m[1], Date.now());
          },
          error: fail,
          complete: () => undefined,
        },
      );
    });
    const toScreen: number[] = [];
    const toClient: number[] = [];
    let state: ModelState = ModelState.STAGING;
    for (let i = 0; i < events; i++) {
      state = state === ModelState.STAGING ? ModelState.SHADOW : ModelState.STAGING;
      const t0 = Date.now();
      await gql(TRANSITION, { id: versionId, to: state, reason: `bench-${i}` });
      const shown = (await (
        await page.waitForFunction(`window.__seen[${JSON.stringify(String(i))}]`, undefined, {
          polling: 50,
          timeout: 30_000,
        })
      ).jsonValue()) as number;
      toScreen.push(shown - t0);
      const reached = clientSeen.get(String(i));
      if (reached !== undefined) toClient.push(reached - t0);
    }
    await ws.dispose();
    await context.close();

    const sortedScreen = [...toScreen].sort((a, b) => a - b);
    const sortedClient = [...toClient].sort((a, b) => a - b);
    const renderMs = median(renders);
    const queryMs = median(queries);
    const screenP99 = percentile(sortedScreen, 99);
    const clientP99 = percentile(sortedClient, 99);
    writeResult('console', {
      lineage_1000_render_ms: round(renderMs, 1),
      lineage_1000_query_ms: round(queryMs, 1),
      lineage_render_vs_query: round(renderMs / queryMs, 2),
      event_to_screen_p50_ms: round(percentile(sortedScreen, 50), 1),
      event_to_screen_p99_ms: round(screenP99, 1),
      event_to_client_p50_ms: round(percentile(sortedClient, 50), 1),
      event_to_client_p99_ms: round(clientP99, 1),
      event_screen_vs_client_p99: round(screenP99 / clientP99, 2),
      events: toScreen.length,
      initial_js_kb_gz: round(initialKb, 1),
      signin_js_kb_gz: round(signinKb, 1),
    });
  } finally {
    await browser.close();
    await p.close();
  }
}
