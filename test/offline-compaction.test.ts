import { columnValue } from '../src/domain/features/dataset';
import {
  FeatureType,
  type FeatureValue,
  type FeatureViewVersion,
  eventLayout,
} from '../src/domain/features/feature-definition';
import { type ResolvedRef } from '../src/domain/features/feature-registry.service';
import {
  compareEvents,
  evaluateView,
  type FeatureEvent,
  seriesOf,
} from '../src/domain/features/point-in-time';
import { type IngestRecord } from '../src/domain/features/validation';
import { CompactFeatureViewDocument, OfflineHistoryDocument } from './generated/graphql';
import { featureSpec, itemView } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { ManualClock } from '../src/domain/shared/clock';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Offline history in columnar segments (ADR 0010): point-in-time reads must give the same
 * values whether history sits in segments, in the append log, or both, for every value type,
 * and a compaction racing appends must lose nothing.
 */
const T0 = Date.parse('2026-06-01T00:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;

const spec = featureSpec;
const FEATURES = [
  spec('f', FeatureType.FLOAT),
  spec('i', FeatureType.INT),
  spec('b', FeatureType.BOOL),
  spec('s', FeatureType.STRING),
  spec('l', FeatureType.FLOAT_LIST),
];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', OFFLINE_COMPACTION_INTERVAL_MS: '0' },
    overrides: { clock },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  await app.services.featureRegistry.createEntity({ name: 'item', joinKeys: ['item_id'] });
});

afterAll(() => app.stop());

async function view(name: string): Promise<{ version: FeatureViewVersion; refs: ResolvedRef[] }> {
  const version = await itemView(app.services, name, FEATURES, 30 * 24 * 3600);
  const refs = await app.services.featureRegistry.resolveRefs(
    FEATURES.map((f) => `${name}:${f.name}`),
  );
  return { version, refs };
}

/** Deterministic records of every type, with nulls, corrections and shared event times. */
function records(n: number, seed: number, entities: number): IngestRecord[] {
  let x = seed;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, k) => {
    const maybe = <T>(v: T): T | null => (rnd() < 0.15 ? null : v);
    return {
      entityKey: `it${Math.floor(rnd() * entities)}`,
      eventId: `r${seed}-${k}`,
      // Coarse times: several events of an entity share one, and ids break the tie.
      eventTs: T0 + Math.floor(rnd() * 40) * 10 * MIN,
      fields: {
        f: maybe(Math.round(rnd() * 1e6) / 1e3),
        i: maybe(Math.floor(rnd() * 100) - 50),
        b: maybe(rnd() < 0.5),
        s: maybe(`v${Math.floor(rnd() * 5)}`),
        l: maybe([rnd(), -rnd()]),
      },
    };
  });
}

/** What every label row should read, from the events in memory and the same evaluator. */
function expected(
  version: FeatureViewVersion,
  history: { entityKey: string; event: FeatureEvent }[],
  labels: { entityKey: string; ts: number }[],
): FeatureValue[][] {
  const byEntity = new Map<string, FeatureEvent[]>();
  for (const h of history)
    byEntity.set(h.entityKey, [...(byEntity.get(h.entityKey) ?? []), h.event]);
  return labels.map(
    (l) =>
      evaluateView(
        version.schema,
        seriesOf((byEntity.get(l.entityKey) ?? []).sort(compareEvents)),
        l.ts,
        { nullWhenStale: true },
      ).values,
  );
}

async function joined(refs: ResolvedRef[], labels: { entityKey: string; ts: number }[]) {
  const cols = await app.services.datasets.pointInTimeJoin(
    { id: '00000000-0000-0000-0000-000000000000', rowCount: labels.length },
    refs,
    labels.map((l) => ({ ...l, label: null })),
  );
  return labels.map((_, i) => cols.map((c) => columnValue(c, i)));
}

async function ingestAt(
  version: FeatureViewVersion,
  batch: IngestRecord[],
  createdTs: number,
): Promise<{ entityKey: string; event: FeatureEvent }[]> {
  clock.set(createdTs);
  const [report] = await app.services.ingestion.ingest([version], batch, 'test');
  expect(report.quarantined).toBe(0);
  const { sources } = eventLayout(version.schema);
  return batch.map((r) => ({
    entityKey: r.entityKey,
    event: {
      eventId: r.eventId,
      eventTs: r.eventTs,
      createdTs,
      values: sources.map((s) => (r.fields[s] as FeatureValue | undefined) ?? null),
    },
  }));
}

const labelsFor = (entities: number) =>
  Array.from({ length: 300 }, (_, k) => ({
    entityKey: `it${k % (entities + 2)}`, // two entities with no history at all
    ts: T0 + ((k * 7919) % 460) * MIN,
  }));

describe('offline history in columnar segments', () => {
  it('reads the same values from segments, the log, and both, for every value type', async () => {
    const { version, refs } = await view('mixed');
    const labels = labelsFor(40);
    const history = await ingestAt(version, records(600, 1, 40), T0 + 500 * MIN);
    const fromLog = await joined(refs, labels);
    expect(fromLog).toEqual(expected(version, history, labels));

    const first = await app.services.compaction.compact('mixed', null);
    expect(first).toMatchObject({ rows: 600, compactedRows: 600 });
    expect(first.segments).toBeGreaterThan(1);
    expect(await joined(refs, labels)).toEqual(fromLog);

    // Appended after the compaction, learned before some labels: corrections (same event
    // times, later created) and entities seen for the first time.
    history.push(...(await ingestAt(version, records(200, 2, 45), T0 + 200 * MIN)));
    const mixed = await joined(refs, labels);
    expect(mixed).toEqual(expected(version, history, labels));
    expect(mixed).not.toEqual(fromLog);

    const second = await app.services.compaction.compact('mixed', null);
    expect(second).toMatchObject({ rows: 200, compactedRows: 800 });
    expect(await joined(refs, labels)).toEqual(mixed);
    expect(await app.services.compaction.compact('mixed', null)).toMatchObject({ rows: 0 });
  });

  it('loses nothing when appends race a compaction', async () => {
    const { version, refs } = await view('racing');
    const labels = labelsFor(30);
    const batches = Array.from({ length: 12 }, (_, b) => records(250, 100 + b, 30));
    const history: { entityKey: string; event: FeatureEvent }[] = [];
    const appends = (async () => {
      for (const b of batches) history.push(...(await ingestAt(version, b, T0 + 600 * MIN)));
    })();
    const compactions = (async () => {
      for (let k = 0; k < 6; k++) {
        await app.services.compaction.compact('racing', null);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await Promise.all([appends, compactions]);
    await app.services.compaction.compact('racing', null);
    const [status] = await app.services.compaction.statuses([version.id]);
    expect(status).toMatchObject({ compactedRows: 3000, pendingRows: 0 });
    expect(await joined(refs, labels)).toEqual(expected(version, history, labels));
  });

  it('moves a backlog of many short statements, interleaved with another view, exactly once', async () => {
    // Compaction reads the log in statements of a few thousand sequence numbers (ADR 0020);
    // another view's rows in between leave gaps, so pages come back short: none may be
    // skipped or read twice, and the other view's rows stay pending.
    const { version, refs } = await view('paged');
    const { version: other } = await view('paged_other');
    const labels = labelsFor(60);
    const history: { entityKey: string; event: FeatureEvent }[] = [];
    for (let b = 0; b < 10; b++) {
      history.push(...(await ingestAt(version, records(700, 300 + b, 60), T0 + 600 * MIN)));
      await ingestAt(other, records(900, 400 + b, 60), T0 + 600 * MIN);
    }
    const report = await app.services.compaction.compact('paged', null);
    expect(report).toMatchObject({ rows: 7000, compactedRows: 7000 });
    const [mine, theirs] = await app.services.compaction.statuses([version.id, other.id]);
    expect(mine).toMatchObject({ compactedRows: 7000, pendingRows: 0 });
    expect(theirs).toMatchObject({ compactedRows: 0, pendingRows: 9000 });
    expect(await joined(refs, labels)).toEqual(expected(version, history, labels));
  });

  it('is reachable through the graph, with what is compacted and what is pending', async () => {
    const { version } = await view('graphed');
    await ingestAt(version, records(50, 7, 5), T0 + 700 * MIN);
    const before = await gql.ok(OfflineHistoryDocument, { name: 'graphed' });
    expect(before.featureView?.versions[0].offlineHistory).toEqual({
      compactedRows: 0,
      pendingRows: 50,
      compactedAt: null,
    });
    const r = await gql.ok(CompactFeatureViewDocument, { view: 'graphed', version: 1 });
    expect(r.compactFeatureView).toMatchObject({ rows: 50, compactedRows: 50 });
    const after = await gql.ok(OfflineHistoryDocument, { name: 'graphed' });
    expect(after.featureView?.versions[0].offlineHistory).toMatchObject({
      compactedRows: 50,
      pendingRows: 0,
    });
    const missing = await gql.raw(
      JSON.stringify({
        query: 'mutation { compactFeatureView(view: "graphed", version: 9) { rows } }',
      }),
    );
    expect(JSON.stringify(missing.json)).toContain('VERSION_NOT_FOUND');
  });
});
