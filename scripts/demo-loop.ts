import 'reflect-metadata';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { Role } from '../src/domain/auth/role';
import { ManualClock } from '../src/domain/shared/clock';
import { type Flight, readFlights } from '../src/infra/datasets/flights';
import { toGlobalId } from '../src/schema/node.types';
import { startRunner, until } from '../test/support/runner-process';
import { startDemoApp } from './demo-app';
import { buildDelaySet, createDelayView, ingestDelays, isLate } from './flights-training-set';

/**
 * `npm run demo:loop`: the monitoring loop on real flights, with a replayed clock. A GBDT
 * trained on January's departures from the ten busiest airports serves February to June:
 * every simulated hour the delays that became known are ingested, the flights leaving one to
 * two hours later are scored (POST /v1/predict), and the flights that left get their labels
 * (recordFeedback). Once a simulated day the drift and performance monitors judge the last
 * week; the retraining policy answers performance alerts with a fresh point-in-time snapshot
 * of the labelled traffic, a real gpu-runner trains the challenger, the registry gate compares
 * it with the champion on the same held-out part, and it goes through shadow and canary to
 * production. Every alert, model transition and endpoint event is printed as it arrives on
 * the subscriptions, with the simulated time.
 */
const DAY = 86_400_000;
const HOUR = 3_600_000;
const START = Date.UTC(2001, 1, 1); // serving starts on 1 February
const END = Date.UTC(2001, 1, 1) + Number(process.env.DEMO_LOOP_DAYS ?? 150) * DAY;
const AIRPORTS = 10;
/** One flight in this many is scored (the others still feed the features). */
const SAMPLE = 12;
const ENDPOINT = 'flight-delay';
const TRAINER = {
  builtinTrainer: 'gbdt',
  hyperparameters: { trees: 60, maxDepth: 4, learningRate: 0.1, minSamplesLeaf: 50 },
};
/** The monitors judge the last week once a simulated day. */
const WINDOW_MS = 7 * DAY;
const STEP_MS = DAY;
const POLICY = {
  triggers: ['PERFORMANCE'],
  cooldownMs: 14 * DAY,
  dataWindowMs: 35 * DAY,
  holdoutShare: 0.2,
  minAucVsChampion: 0.005,
  shadowMs: 12 * HOUR,
};
const PERFORMANCE = { minLabels: 2_000, maxAucDrop: 0.02 };
/**
 * When a flight is scored: on the hour, one to two hours before it is scheduled to leave. The
 * training rows use the same time, so the features a model learns from are the ones it is served.
 */
const scoredAt = (f: Flight) => Math.floor((f.scheduled - HOUR) / HOUR) * HOUR;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const stamp = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
const log = (s: string) => console.log(s);

interface Report {
  kind: string;
  alerting: boolean;
  labels: number | null;
  metrics: Record<string, number> | null;
  version: { version: number };
  features: { feature: string; drifted: boolean; psi: number }[];
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const clock = new ManualClock(START);
  const { app, dataDir, gql, token } = await startDemoApp(
    'demo-loop',
    {
      FEATURE_STREAM_CONSUMER: 'off',
      // The demo plays the schedulers, on the simulated clock.
      MONITOR_INTERVAL_MS: '0',
      CANARY_INTERVAL_MS: '0',
    },
    { clock },
  );
  const s = app.services;
  const runnerKey = await s.apiKeys.create(null, { name: 'loop-runner', role: Role.RUNNER });
  const runner = startRunner(app.url, runnerKey.token, {
    RUNNER_NAME: 'loop-runner',
    GPU_RUNNER_GPUS: '',
    RUNNER_POLL_MS: '200',
  });
  let closing = false;
  void runner.exited.then((code) => {
    if (!closing) log(`the gpu-runner exited (${code}):\n${runner.log().slice(-3_000)}`);
  });
  const ws = createClient({
    url: app.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  let events = 0;
  const event = (at: number, what: string) => {
    events++;
    log(`   [${stamp(at)}] ${what}`);
  };
  /** Prints each event of one subscription field, at the time it carries. */
  const subscribe = <E>(field: string, query: string, line: (e: E) => [number, string]) =>
    ws.subscribe<Record<string, E>>(
      { query },
      {
        next: (v) => v.data && event(...line(v.data[field])),
        error: (e) => log(`subscription failed: ${JSON.stringify(e)}`),
        complete: () => undefined,
      },
    );
  try {
    log(`Aether is up at ${app.url} (data in ${dataDir}); one gpu-runner; clock at ${day(START)}`);

    // 1. Data: the ten busiest origins, January for training, the rest replayed.
    const all = await readFlights(0, 3_000_000);
    const counts = new Map<string, number>();
    for (const f of all) counts.set(f.origin, (counts.get(f.origin) ?? 0) + 1);
    const airports = new Set(
      [...counts]
        .sort((a, b) => b[1] - a[1])
        .slice(0, AIRPORTS)
        .map(([a]) => a),
    );
    const flights = all.filter((f) => airports.has(f.origin));
    const version = await createDelayView(s);
    await ingestDelays(
      s,
      version,
      flights.filter((f) => f.departed < START),
    );
    const january = flights.filter(
      (f) => f.scheduled >= Date.UTC(2001, 0, 2) && f.departed < START,
    );
    const trainRows = january.filter((f) => f.scheduled < Date.UTC(2001, 0, 25));
    const heldRows = january.filter((f) => f.scheduled >= Date.UTC(2001, 0, 25));
    const train = await buildDelaySet(s, version, 'delay-jan-train', trainRows, scoredAt);
    const held = await buildDelaySet(s, version, 'delay-jan-heldout', heldRows, scoredAt);
    log(
      `1. ${flights.length} flights from ${[...airports].join(' ')}; January's delays ingested; ` +
        `snapshots ${train.name} (${train.rowCount} rows) and ${held.name} (${held.rowCount})`,
    );

    // 2. The champion: trained by the runner, validated, promoted, deployed, watched.
    type Ev = Record<string, string | null>;
    subscribe<Ev>(
      'modelEvents',
      `subscription { modelEvents { model version from to reason at } }`,
      (e) => [
        Date.parse(e.at ?? ''),
        `model    ${e.model}@${e.version} ${e.from ?? '-'} → ${e.to}${e.reason ? `: ${e.reason}` : ''}`,
      ],
    );
    for (const kind of ['driftEvents', 'performanceEvents'])
      subscribe<{ status: string; alert: Ev }>(
        kind,
        `subscription { ${kind}(endpoint: "${ENDPOINT}") { status alert { kind summary openedAt acknowledgedAt clearedAt } } }`,
        ({ status, alert: a }) =>
          status === 'OPENED'
            ? [Date.parse(a.openedAt ?? ''), `alert    OPENED ${a.kind}: ${a.summary}`]
            : [
                Date.parse(a.clearedAt ?? a.acknowledgedAt ?? ''),
                `alert    ${status} ${a.kind} (opened ${stamp(Date.parse(a.openedAt ?? ''))})`,
              ],
      );
    subscribe<Ev>(
      'deploymentEvents',
      `subscription { deploymentEvents(endpoint: "${ENDPOINT}") { kind detail at } }`,
      (e) => [Date.parse(e.at ?? ''), `endpoint ${e.kind}: ${e.detail}`],
    );
    const job = await gql<{ submitTrainingJob: { id: string } }>(
      `mutation($input: SubmitTrainingJobInput!) { submitTrainingJob(input: $input) { id } }`,
      {
        input: {
          experiment: 'flight-delay',
          datasetId: toGlobalId('DatasetSnapshot', train.id),
          registerAs: 'flight-delay',
          ...TRAINER,
        },
      },
    );
    const v1 = await until(async () => {
      const r = await gql<{ run: { status: string; modelVersion: { id: string } | null } }>(
        `query($id: ID!) { run(id: $id) { status modelVersion { id } } }`,
        { id: job.submitTrainingJob.id },
      );
      if (r.run.status === 'FAILED') throw new Error('the champion failed to train');
      return r.run.modelVersion?.id;
    }, 600_000);
    await gql(
      `mutation($id: ID!, $d: ID!) { validateModelVersion(id: $id, datasetId: $d) { id } }`,
      {
        id: v1,
        d: toGlobalId('DatasetSnapshot', held.id),
      },
    );
    for (const to of ['STAGING', 'SHADOW', 'CANARY', 'PRODUCTION'])
      await gql(
        `mutation($id: ID!, $to: ModelState!) { transitionModelVersion(id: $id, to: $to, reason: "January champion") { id } }`,
        { id: v1, to },
      );
    await gql(
      `mutation($input: CreateDeploymentInput!) { createDeployment(input: $input) { ready } }`,
      {
        input: {
          endpoint: ENDPOINT,
          model: 'flight-delay',
          canaryShare: 0.25,
          canaryPolicy: {
            steps: [0.25, 0.5, 1],
            stepMs: 6 * HOUR,
            windowMs: DAY,
            minSamples: 50,
            maxP99Ratio: 5,
          },
          // One replica: the whole platform shares two cores here, so more would only contend.
          autoscalePolicy: { minReplicas: 1, maxReplicas: 1 },
        },
      },
    );
    const monitors: { id: string; kind: string }[] = [];
    for (const [kind, settings] of [
      ['DATA_DRIFT', {}],
      ['PERFORMANCE', { performance: PERFORMANCE }],
    ] as const) {
      const m = await gql<{ createMonitor: { id: string; kind: string } }>(
        `mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id kind } }`,
        { input: { endpoint: ENDPOINT, kind, windowMs: WINDOW_MS, stepMs: STEP_MS, ...settings } },
      );
      monitors.push(m.createMonitor);
    }
    await gql(
      `mutation($p: RetrainingPolicyInput!) { setRetrainingPolicy(model: "flight-delay", policy: $p) }`,
      { p: POLICY },
    );
    log(
      `2. flight-delay@1 (${TRAINER.builtinTrainer}) trained by the runner, validated on ${held.name}, in PRODUCTION behind /${ENDPOINT}; ` +
        `monitors: drift (default rule) and performance (AUC drop > ${PERFORMANCE.maxAucDrop} vs its evaluation, ≥ ${PERFORMANCE.minLabels} labels) over ${WINDOW_MS / DAY} days, daily; ` +
        `retraining on ${POLICY.triggers.join(', ')} alerts, ${POLICY.cooldownMs / DAY}-day cool-down, ${POLICY.dataWindowMs / DAY}-day data window, ${POLICY.shadowMs / HOUR} h shadow`,
    );

    // 3. Replay: one simulated hour at a time.
    log(
      `3. replaying ${day(START)} → ${day(END)}; weekly: late share, then per served version drift and performance`,
    );
    const predictUrl = `${new URL(app.url).origin}/v1/predict/${ENDPOINT}`;
    const future = flights.filter((f) => f.departed >= START && f.scheduled < END);
    const byDeparture = [...future].sort((a, b) => a.departed - b.departed);
    const scored = future.filter((_, i) => i % SAMPLE === 0);
    let nextDeparture = 0;
    let nextScored = 0;
    const pending: { predictionId: string; flight: Flight }[] = [];
    let sent = 0;
    let failed = 0;
    let pausedMs = 0;
    let week: { late: number; n: number } = { late: 0, n: 0 };
    for (let now = START; now < END; now += HOUR) {
      clock.set(now);
      // Delays that became known in the last hour.
      const known: Flight[] = [];
      while (nextDeparture < byDeparture.length && byDeparture[nextDeparture].departed < now)
        known.push(byDeparture[nextDeparture++]);
      if (known.length) await ingestDelays(s, version, known);
      // Labels for the scored flights that have left.
      const labelled = pending.filter((p) => p.flight.departed < now);
      if (labelled.length) {
        await inParallel(labelled, 8, (p) =>
          gql(`mutation($id: ID!, $l: Float!) { recordFeedback(predictionId: $id, label: $l) }`, {
            id: p.predictionId,
            l: isLate(p.flight) ? 1 : 0,
          }),
        );
        for (const p of labelled) {
          week.n++;
          week.late += isLate(p.flight) ? 1 : 0;
        }
        pending.splice(0, pending.length, ...pending.filter((p) => p.flight.departed >= now));
      }
      // Flights scheduled one to two hours from now, scored on the JSON path (POST /v1/predict).
      const due: Flight[] = [];
      while (nextScored < scored.length && scored[nextScored].scheduled < now + 2 * HOUR) {
        if (scored[nextScored].scheduled >= now + HOUR) due.push(scored[nextScored]);
        nextScored++;
      }
      if (due.length) {
        await inParallel(due, 32, async (f) => {
          try {
            const res = await fetch(predictUrl, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
              body: JSON.stringify({ requestKey: `traveller-${f.id}`, entityKeys: [f.origin] }),
            });
            const r = (await res.json()) as { predictions: { id: string }[] };
            pending.push({ predictionId: r.predictions[0].id, flight: f });
          } catch {
            failed++;
          }
        });
        sent += due.length;
      }
      // The schedulers: monitors daily, retrainings and the canary controller every hour.
      if ((now - START) % STEP_MS === 0 && now > START) {
        const reports: Report[] = [];
        for (const m of monitors)
          reports.push(
            ...(
              await gql<{ runMonitor: Report[] }>(
                `mutation($id: ID!) { runMonitor(id: $id) { kind alerting labels metrics version { version } features { feature drifted psi } } }`,
                { id: m.id },
              )
            ).runMonitor,
          );
        if ((now - START) % (7 * DAY) === 0) {
          log(
            `   ${day(now)}  late ${((100 * week.late) / Math.max(1, week.n)).toFixed(1)}% of ${week.n}; ${describe(reports)}`,
          );
          week = { late: 0, n: 0 };
        }
      }
      const step = await gql<{
        advanceRetrainings: { status: string }[];
        reviewCanaries: unknown[];
      }>(`mutation { advanceRetrainings { status } reviewCanaries { action } }`);
      // The runner trains in real time: the clock waits for it rather than racing ahead.
      if (step.advanceRetrainings.some((r) => r.status === 'BUILDING' || r.status === 'TRAINING')) {
        const paused = Date.now();
        await until(async () => {
          const r = await gql<{ advanceRetrainings: { status: string }[] }>(
            `mutation { advanceRetrainings { status } }`,
          );
          return r.advanceRetrainings.some(
            (x) => x.status === 'BUILDING' || x.status === 'TRAINING',
          )
            ? undefined
            : true;
        }, 600_000);
        pausedMs += Date.now() - paused;
      }
    }
    await s.predictionLog.flush();

    // 4. What the retrainings did, and where the new champion came from.
    const { retrainings } = await gql<{
      retrainings: {
        id: string;
        cause: string;
        status: string;
        alertId: string | null;
        challenger: { id: string; version: number; state: string } | null;
        steps: { at: string; status: string; detail: string }[];
      }[];
    }>(
      `{ retrainings(model: "flight-delay") { id cause status alertId challenger { id version state } steps { at status detail } } }`,
    );
    log(`4. ${retrainings.length} retraining(s):`);
    for (const r of retrainings) {
      log(`   ${r.status} — ${r.cause}`);
      for (const st of r.steps)
        log(`     [${stamp(Date.parse(st.at))}] ${st.status.padEnd(16)} ${st.detail}`);
    }
    const promoted = retrainings.filter((r) => r.status === 'PROMOTED').at(-1);
    if (promoted?.alertId && promoted.challenger) {
      const { lineage } = await gql<{
        lineage: { nodes: { id: string; kind: string; label: string; depth: number }[] };
      }>(
        `query($id: ID!) { lineage(id: $id, direction: UPSTREAM, depth: 4) { nodes { id kind label depth } } }`,
        { id: promoted.challenger.id },
      );
      const kinds = (k: string) => lineage.nodes.filter((n) => n.kind === k).map((n) => n.label);
      log(
        `5. lineage upstream of flight-delay@${promoted.challenger.version}: run ${kinds('Run').join(', ')}; ` +
          `snapshots ${kinds('DatasetSnapshot').join(', ')}; retraining ${kinds('Retraining').join(', ')}; alert ${kinds('Alert').join(', ')}`,
      );
    }
    log(
      `6. ${sent} predictions (${failed} failed) over ${Math.round((END - START) / DAY)} simulated days in ${((Date.now() - t0) / 1000).toFixed(0)} s ` +
        `(${(pausedMs / 1000).toFixed(0)} s of it with the clock held while the runner trained); ${events} events on the subscriptions`,
    );
  } finally {
    closing = true;
    await ws.dispose();
    runner.child.kill('SIGTERM');
    await runner.exited;
    await app.close();
  }
}

/** `fn` over the items, at most `limit` at a time (concurrent requests, as real clients send). */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One line per served version: drifted features and the window's performance. */
function describe(reports: Report[]): string {
  const byVersion = new Map<number, Report[]>();
  for (const r of reports)
    byVersion.set(r.version.version, [...(byVersion.get(r.version.version) ?? []), r]);
  return [...byVersion]
    .map(([v, rs]) => {
      const drift = rs.find((r) => r.kind === 'DATA_DRIFT');
      const perf = rs.find((r) => r.kind === 'PERFORMANCE');
      const drifted = drift?.features.filter((f) => f.drifted).length ?? 0;
      const worst = drift?.features.reduce((a, b) => (b.psi > a.psi ? b : a));
      const m = perf?.metrics;
      return (
        `@${v}: drift ${drifted}/${drift?.features.length ?? 0}` +
        (worst ? ` (max PSI ${worst.psi.toFixed(2)} ${worst.feature.split(':').at(-1)})` : '') +
        (m
          ? `, AUC ${m.auc?.toFixed(3)} log loss ${m.log_loss?.toFixed(3)} on ${perf?.labels} labels`
          : '') +
        (perf?.alerting ? ' ALERT' : '')
      );
    })
    .join('; ');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
