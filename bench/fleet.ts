import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient, type Client as WsClient } from 'graphql-ws';
import { Client as Pg } from 'pg';
import WebSocket from 'ws';
import { startApp } from '../src/app/app';
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { loadConfig } from '../src/infra/config/config';
import { createLogger } from '../src/infra/observability/logger';
import { type ApiProcess, spawnApi } from '../test/support/api-process';
import { buildFloatDataset } from '../test/support/datasets';
import { deleteRedisPrefix } from '../test/support/isolation';
import { startRedisCluster } from '../test/support/redis-cluster';
import { resolveServices } from '../test/support/services';
import { migrateSchema } from '../test/support/test-app';
import { registerKnownModel } from '../test/support/trained-model';
import { fromGlobalId } from '../src/schema/node.types';
import {
  type LoadResult,
  median,
  percentile,
  round,
  runLoad,
  scale,
  writeResult,
} from './support/bench';

/**
 * fleet (issue 15, docs/adr/0027-0029): three api processes on one PostgreSQL schema and a
 * Redis Cluster of three masters, sharing one REDIS_PREFIX, as a deployment behind a load
 * balancer runs them. All figures come from one run:
 *
 * - Events. A subscriber on every process (`apiKeyEvents` over graphql-ws); createApiKey and
 *   revokeApiKey spread round-robin over the processes, first on a steady fleet, then while
 *   the holder of the `outbox-relay` lease (found in the `lease` table) is SIGKILLed part way.
 *   The committed changes are read back from PostgreSQL (a mutation in flight when its process
 *   died may or may not have committed). On each subscriber that survived, per committed
 *   change: no delivery is a lost event; deliveries under more than one cursor are a
 *   duplicate effect (the relay, the singleton loop measured here, numbered the change
 *   twice), as is a change written to the outbox more than once; the same cursor delivered
 *   again is a redelivery, allowed by at-least-once and counted apart.
 * - `outbox_relay_p99_ms`: mutation response to the event's arrival at the subscribers of the
 *   other two processes, on the steady fleet.
 * - Lease failover: SIGKILL of the `outbox-relay` holder to another process holding the lease
 *   (polling the table), once in the events phase and again after each replacement process
 *   is started; max and median against the TTL.
 * - Canary outcomes: an endpoint with a production and a canary version (share 0.5); N
 *   predictions round-robin over the processes; the fleet's counted outcomes
 *   (`deploymentTraffic`, read from one process) over the requests answered, and what the
 *   processes recorded themselves (`aether_predictions_total` of each `/metrics`).
 * - Throughput: predict (GraphQL, one inline row) against one process, then against three
 *   behind a round-robin client, concurrency 16, medians of three runs each.
 *
 * Events on a cluster go by sharded pub/sub, so one topic's events arrive in order: a first
 * run with plain PUBLISH lost 137 of 898 deliveries to reordering (docs/adr/0029).
 *
 * The models and deployments are set up by an api in this process, which is then closed (it
 * would otherwise compete for the leases, and a lease it held could not be killed).
 */
const F = ['acct@1:a', 'acct@1:b'];
const ROW = { [F[0]]: 1, [F[1]]: 1 };
const ADMIN = { keyId: 'bench', name: 'bench', role: 'ADMIN' as never };
const LEASE_TTL_MS = 2_000;
const PREDICT = `mutation($e: String!, $k: String!, $r: [JSONObject!]) {
  predict(endpoint: $e, requestKey: $k, rows: $r) { score version { version } } }`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function gql<T>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const j = (await res.json()) as { data?: T; errors?: unknown[] };
  if (j.errors?.length || !j.data) throw new Error(`GraphQL errors: ${JSON.stringify(j.errors)}`);
  return j.data;
}

/** Models and deployments through the services of an api in this process; returns the admin key. */
async function setUp(env: Record<string, string>): Promise<string> {
  await migrateSchema(env);
  const app = await startApp(loadConfig(env), { logger: createLogger('silent') });
  try {
    const s = app.services;
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
    const known = (model: string, weights: number[]) =>
      registerKnownModel(s, { model, datasetId: snapshot.id, features: F, weights, bias: 0 });
    const promote = async (v: ModelVersion, to: ModelState) => {
      await s.registry.validate(ADMIN, v.id, snapshot.id);
      const steps = [ModelState.STAGING, ModelState.SHADOW, ModelState.CANARY];
      if (to === ModelState.PRODUCTION) steps.push(ModelState.PRODUCTION);
      for (const state of steps) await s.registry.transition(ADMIN, v.id, state, 'bench');
    };
    await promote(await known('score', [1, 0]), ModelState.PRODUCTION);
    await promote(await known('score', [0.5, 0.5]), ModelState.CANARY);
    await promote(await known('plain', [1, 1]), ModelState.PRODUCTION);
    await s.deployments.create(ADMIN, {
      endpoint: 'score',
      model: 'score',
      maxWaitUs: 0,
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
    await s.deployments.create(ADMIN, { endpoint: 'plain', model: 'plain', maxWaitUs: 0 });
    if (!app.bootstrapAdminToken) throw new Error('a fresh schema should give an admin key');
    return app.bootstrapAdminToken;
  } finally {
    await app.close();
  }
}

interface Delivery {
  cursors: string[];
  /** performance.now() of the first delivery. */
  at: number;
}

interface Watcher {
  proc: ApiProcess;
  seen: Map<string, Delivery>;
  failed: boolean;
  client: WsClient;
}

/** An `apiKeyEvents` subscriber on one process; deliveries by `${keyId}:${kind}`. */
function watch(proc: ApiProcess, token: string): Watcher {
  const client = createClient({
    url: proc.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const w: Watcher = { proc, seen: new Map(), failed: false, client };
  client.subscribe<{ apiKeyEvents: { kind: string; keyId: string; cursor: string } }>(
    { query: 'subscription { apiKeyEvents { kind keyId cursor } }' },
    {
      next: (r) => {
        const e = r.data?.apiKeyEvents;
        if (!e) return;
        const k = `${localId(e.keyId)}:${e.kind}`;
        const d = w.seen.get(k);
        if (d) d.cursors.push(e.cursor);
        else w.seen.set(k, { cursors: [e.cursor], at: performance.now() });
      },
      error: () => (w.failed = true),
      complete: () => (w.failed = true),
    },
  );
  return w;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

/** Events and mutations name keys by global ID, PostgreSQL by uuid. */
const localId = (globalId: string) => fromGlobalId(globalId)?.localId ?? globalId;

/** CPU time (user + system) the processes have used so far, in ms (Linux /proc, 100 ticks/s). */
function cpuMs(procs: readonly ApiProcess[]): number {
  let ticks = 0;
  for (const p of procs) {
    const stat = fs.readFileSync(`/proc/${p.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * 10;
}

/** The pid in a lease holder's name (`<hostname>-<pid>-<hex>`, src/app/app.ts). */
const pidOf = (holder: string) => Number(/-(\d+)-[0-9a-f]+$/.exec(holder)?.[1] ?? NaN);

export async function main(): Promise<void> {
  const s = scale();
  const services = await resolveServices();
  const cluster = await startRedisCluster();
  const id = `bench_fleet_${randomBytes(3).toString('hex')}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `aether-${id}-`));
  const shared: Record<string, string> = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_SECOND: '0',
    DATABASE_URL: services.databaseUrl,
    DATABASE_SCHEMA: id,
    REDIS_CLUSTER_NODES: cluster.nodes,
    REDIS_PREFIX: `${id}:`,
    ARTIFACT_STORE_URL: `file://${path.join(tmp, 'artifacts')}`,
    LEASE_TTL_MS: String(LEASE_TTL_MS),
    FEATURE_STREAM_CONSUMER: 'off',
    // The canary keeps its share: no verdict moves traffic while outcomes are counted.
    CANARY_INTERVAL_MS: '0',
    AUTOSCALE_INTERVAL_MS: '0',
    MONITOR_INTERVAL_MS: '0',
    OFFLINE_COMPACTION_INTERVAL_MS: '0',
  };
  let n = 0;
  const envFor = () => ({ ...shared, DATA_DIR: path.join(tmp, `api-${n++}`) });
  const procs: ApiProcess[] = [];
  const everyProc: ApiProcess[] = [];
  const spawn = async () => {
    const p = await spawnApi(envFor(), { readyTimeoutMs: 60_000 });
    everyProc.push(p);
    return p;
  };
  const pg = new Pg({ connectionString: services.databaseUrl });
  await pg.connect();
  const watchers: Watcher[] = [];
  try {
    const token = await setUp({ ...envFor(), PORT: '0', LOG_LEVEL: 'silent' });
    procs.push(...(await Promise.all([spawn(), spawn(), spawn()])));
    await pg.query(`SET search_path TO "${id}"`);
    const relayHolder = async (): Promise<string | null> => {
      const r = await pg.query<{ holder: string }>(
        `SELECT holder FROM lease WHERE name = 'outbox-relay' AND expires_at > clock_timestamp()`,
      );
      return r.rows[0]?.holder ?? null;
    };
    /** SIGKILLs the relay's holder; resolves with the ms until another process holds it. */
    const killHolder = async (): Promise<{ killed: ApiProcess; failoverMs: Promise<number> }> => {
      let holder: string | null = null;
      await until(async () => (holder = await relayHolder()) !== null, 10_000);
      const victim = procs.find((p) => p.child.pid === pidOf(holder ?? ''));
      if (!holder || !victim)
        throw new Error(`the relay lease is held by ${holder}, not a fleet process`);
      const t0 = performance.now();
      victim.child.kill('SIGKILL');
      procs.splice(procs.indexOf(victim), 1);
      const failoverMs = (async () => {
        for (;;) {
          const h = await relayHolder();
          if (h && h !== holder) return performance.now() - t0;
          if (performance.now() - t0 > 10 * LEASE_TTL_MS)
            throw new Error('no process took the relay lease');
          await sleep(10);
        }
      })();
      return { killed: victim, failoverMs };
    };

    // ---- Canary outcomes: N predictions round-robin, counted by the fleet. ----
    // Every process loads and warms both versions on its reconcile (each second).
    await sleep(2_000);
    const N = Math.round(600 * s);
    const served = new Map<number, number>();
    let answered = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < N) {
          const i = next++;
          const r = await gql<{ predict: { version: { version: number } }[] }>(
            procs[i % procs.length].url,
            token,
            PREDICT,
            { e: 'score', k: `user-${i}`, r: [ROW] },
          );
          const v = r.predict[0].version.version;
          served.set(v, (served.get(v) ?? 0) + 1);
          answered++;
        }
      }),
    );
    // Past the 200 ms flush of every process.
    await sleep(1_000);
    const traffic = await gql<{ deploymentTraffic: { requests: number }[] }>(
      procs[0].url,
      token,
      'query { deploymentTraffic(endpoint: "score", windowSeconds: 600) { requests } }',
    );
    const counted = traffic.deploymentTraffic.reduce((a, t) => a + t.requests, 0);
    let recorded = 0;
    for (const p of procs) {
      const text = await (await fetch(`${p.base}/metrics`)).text();
      for (const line of text.split('\n'))
        if (line.startsWith('aether_predictions_total{') && line.includes('endpoint="score"'))
          recorded += Number(line.split(' ').pop());
    }

    // ---- Throughput: one process, then three behind a round-robin client. ----
    const seconds = Math.max(2, Math.round(4 * s));
    const load = (urls: string[]) =>
      runLoad({
        mode: 'http',
        url: urls[0],
        urls,
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: PREDICT, variables: { e: 'plain', k: 'bench', r: [ROW] } }),
        concurrency: 16,
        seconds,
        warmupSeconds: 1,
      });
    for (const p of procs) await gql(p.url, token, PREDICT, { e: 'plain', k: 'check', r: [ROW] }); // throws on errors
    const one: LoadResult[] = [];
    const three: LoadResult[] = [];
    // Server CPU per request, all three processes counted in both cases.
    let cpuOne = 0;
    let cpuThree = 0;
    for (let r = 0; r < 3; r++) {
      let c0 = cpuMs(procs);
      one.push(await load([procs[0].url]));
      cpuOne += cpuMs(procs) - c0;
      c0 = cpuMs(procs);
      three.push(await load(procs.map((p) => p.url)));
      cpuThree += cpuMs(procs) - c0;
    }
    const requests = (rs: LoadResult[]) => rs.reduce((a, x) => a + x.n + x.errors, 0);

    // ---- Events: steady, then with the relay's holder killed part way. ----
    watchers.push(...procs.map((p) => watch(p, token)));
    const sentinel = await gql<{ createApiKey: { apiKey: { id: string } } }>(
      procs[0].url,
      token,
      'mutation { createApiKey(input: { name: "fleet-sentinel", role: VIEWER }) { apiKey { id } } }',
    );
    const sentinelKey = `${localId(sentinel.createApiKey.apiKey.id)}:CREATED`;
    if (!(await until(() => watchers.every((w) => w.seen.has(sentinelKey)), 20_000)))
      throw new Error('the subscribers did not start');
    const responded = new Map<string, { at: number; proc: ApiProcess; steady: boolean }>();
    let failedMutations = 0;
    const mutations = async (count: number, steady: boolean, onStart?: (i: number) => void) => {
      let j = 0;
      await Promise.all(
        Array.from({ length: 3 }, async (_, w) => {
          let mine: string | null = null;
          while (j < count) {
            const i = j++;
            onStart?.(i);
            const proc = procs[i % procs.length];
            try {
              if (mine) {
                await gql(proc.url, token, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', {
                  id: mine,
                });
                responded.set(`${localId(mine)}:REVOKED`, {
                  at: performance.now(),
                  proc,
                  steady,
                });
                mine = null;
              } else {
                const r = await gql<{ createApiKey: { apiKey: { id: string } } }>(
                  proc.url,
                  token,
                  'mutation($n: String!) { createApiKey(input: { name: $n, role: VIEWER }) { apiKey { id } } }',
                  { n: `fleet-ev-${steady ? 's' : 'k'}-${w}-${i}` },
                );
                mine = r.createApiKey.apiKey.id;
                responded.set(`${localId(mine)}:CREATED`, {
                  at: performance.now(),
                  proc,
                  steady,
                });
              }
            } catch {
              // Its process was killed: the change may have committed or not (PostgreSQL says).
              failedMutations++;
              mine = null;
            }
          }
        }),
      );
    };
    await mutations(Math.round(300 * s), true);
    const K = Math.round(150 * s);
    const kill: { started?: ReturnType<typeof killHolder> } = {};
    await mutations(K, false, (i) => {
      if (i === Math.floor(K / 3)) kill.started = killHolder();
    });
    if (!kill.started) throw new Error('the relay holder was not killed');
    const failovers = [await (await kill.started).failoverMs];

    // What committed, from PostgreSQL.
    const keys = await pg.query<{ id: string; revoked: boolean }>(
      `SELECT id, revoked_at IS NOT NULL AS revoked FROM api_key WHERE name LIKE 'fleet-ev-%'`,
    );
    const changes = keys.rows.flatMap((k) => [
      `${k.id}:CREATED`,
      ...(k.revoked ? [`${k.id}:REVOKED`] : []),
    ]);
    const survivors = watchers.filter((w) => procs.includes(w.proc) && !w.failed);
    await until(() => survivors.every((w) => changes.every((c) => w.seen.has(c))), 30_000);
    let lost = 0;
    let lostSteady = 0;
    let duplicates = 0;
    let redelivered = 0;
    let delivered = 0;
    for (const w of survivors)
      for (const c of changes) {
        const d = w.seen.get(c);
        if (!d) {
          lost++;
          if (responded.get(c)?.steady) lostSteady++;
          continue;
        }
        delivered += d.cursors.length;
        const distinct = new Set(d.cursors).size;
        if (distinct > 1) duplicates++;
        redelivered += d.cursors.length - distinct;
      }
    const committed = new Set(changes);
    let withoutChange = 0;
    for (const w of survivors)
      for (const k of w.seen.keys()) if (!committed.has(k) && k !== sentinelKey) withoutChange++;
    const twiceInOutbox = await pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT 1 FROM outbox WHERE topic = 'api-keys'
         GROUP BY payload->>'keyId', payload->>'kind' HAVING count(*) > 1) d`,
    );
    duplicates += twiceInOutbox.rows[0].n;
    const relayMs: number[] = [];
    let worstAcrossFailoverMs = 0;
    for (const [c, r] of responded) {
      for (const w of survivors) {
        const d = w.seen.get(c);
        if (!d || w.proc === r.proc) continue;
        if (r.steady) relayMs.push(d.at - r.at);
        else worstAcrossFailoverMs = Math.max(worstAcrossFailoverMs, d.at - r.at);
      }
    }
    relayMs.sort((a, b) => a - b);
    for (const w of watchers) void w.client.dispose();

    // ---- Lease failover again: a replacement joins, the holder is killed. ----
    for (let r = 0; r < 4; r++) {
      procs.push(await spawn());
      const k = await killHolder();
      failovers.push(await k.failoverMs);
    }

    writeResult('fleet', {
      processes: 3,
      duplicate_effects: duplicates,
      lost_events: lost,
      lost_events_on_steady_fleet: lostSteady,
      redelivered_events: redelivered,
      events_without_committed_change: withoutChange,
      committed_changes: changes.length,
      surviving_subscribers: survivors.length,
      events_delivered_to_survivors: delivered,
      mutations_failed_by_kill: failedMutations,
      lease_ttl_seconds: LEASE_TTL_MS / 1000,
      lease_failover_seconds: round(Math.max(...failovers) / 1000),
      lease_failover_seconds_median: round(median(failovers) / 1000),
      lease_failover_max_over_ttl: round(Math.max(...failovers) / LEASE_TTL_MS, 2),
      lease_failovers_measured: failovers.length,
      outbox_relay_p50_ms: round(percentile(relayMs, 50), 1),
      outbox_relay_p99_ms: round(percentile(relayMs, 99), 1),
      outbox_relay_samples: relayMs.length,
      outbox_relay_max_ms_across_failover: round(worstAcrossFailoverMs, 1),
      canary_requests_answered: answered,
      canary_outcomes_counted: counted,
      canary_outcomes_recorded_by_processes: recorded,
      canary_outcomes_counted_ratio: round(counted / answered, 4),
      canary_share_served: round((served.get(2) ?? 0) / answered, 3),
      rps_1_process: round(median(one.map((x) => x.rps)), 0),
      p99_ms_1_process: round(median(one.map((x) => x.p99))),
      rps_3_processes: round(median(three.map((x) => x.rps)), 0),
      p99_ms_3_processes: round(median(three.map((x) => x.p99))),
      rps_ratio_3_vs_1: round(median(three.map((x) => x.rps)) / median(one.map((x) => x.rps)), 2),
      p99_ratio_3_vs_1: round(median(three.map((x) => x.p99)) / median(one.map((x) => x.p99)), 2),
      server_cpu_ms_per_request_1_process: round(cpuOne / requests(one), 3),
      server_cpu_ms_per_request_3_processes: round(cpuThree / requests(three), 3),
      load_errors: [...one, ...three].reduce((a, x) => a + x.errors, 0),
      cpu_cores: os.cpus().length,
    });
  } finally {
    for (const w of watchers) await w.client.dispose();
    await Promise.all(everyProc.map((p) => p.stop()));
    await pg.query(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => undefined);
    await pg.end();
    await deleteRedisPrefix(
      {
        nodes: cluster.ports.map((port) => ({ host: '127.0.0.1', port })),
      },
      shared.REDIS_PREFIX,
    );
    await cluster.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    await services.stop();
  }
}
