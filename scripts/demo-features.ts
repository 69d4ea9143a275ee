import 'reflect-metadata';
import { startDemoApp } from './demo-app';
import path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { flightsFile, readFlights } from '../src/infra/datasets/flights';
import { appendToStream, type StreamRecordInput } from '../src/infra/redis/feature-stream';
import { closeRedis, createRedisClient } from '../src/infra/redis/redis-client';

/**
 * `npm run demo:features`: real US flights (vega-datasets' flights-3m.parquet) through the
 * feature store. Starts Aether on its embedded default (or DATABASE_URL / REDIS_URL when
 * set), streams a sample of flights into two source streams as a producer would, reads
 * online features through GraphQL, and builds a point-in-time training snapshot.
 *
 * A flight's delay is known only once it has departed, so its event time is the actual
 * departure (scheduled + delay), not the scheduled time. History is replayed with
 * `knownAt` = event time and shifted so the newest departure is a minute ago.
 */
const SAMPLE = Number(process.env.DEMO_FLIGHTS ?? 60_000);
const SPINE = 4_000;
const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  const { app, dataDir, gql } = await startDemoApp('demo-features');
  try {
    log(`Aether is up at ${app.url} (data in ${dataDir})`);

    // 1. The flights.
    const file = flightsFile();
    const flights = (await readFlights(0, SAMPLE)).map((f) => ({
      ...f,
      delay: f.delayMinutes,
      distance: f.distanceMiles,
    }));
    const shift = Date.now() - 60_000 - Math.max(...flights.map((f) => f.departed));
    for (const f of flights) {
      f.scheduled += shift;
      f.departed += shift;
    }
    log(
      `1. read ${flights.length} flights from ${path.basename(file)} (${new Date(flights[0].scheduled - shift).toISOString().slice(0, 10)} onwards), replayed as of now`,
    );

    // 2. Entities and feature views, through the graph.
    await gql(
      `mutation { a: createFeatureEntity(input: {name: "airport", joinKeys: ["origin"]}) { id } r: createFeatureEntity(input: {name: "route", joinKeys: ["origin", "destination"]}) { id } }`,
    );
    const windows = [1, 6, 24];
    await gql(
      `mutation($input: CreateFeatureViewInput!) { createFeatureView(input: $input) { name } }`,
      {
        input: {
          name: 'airport_delays',
          entity: 'airport',
          source: 'flights',
          ttlSeconds: 2 * 24 * 3600,
          allowedLatenessSeconds: 24 * 3600,
          owner: 'demo',
          description: 'Departure delays per origin airport, by actual departure time',
          features: [
            {
              name: 'last_delay',
              type: 'FLOAT',
              source: 'delay',
              validation: { min: -120, max: 1800 },
            },
            ...windows.map((h) => ({
              name: `mean_delay_${h}h`,
              type: 'FLOAT',
              source: 'delay',
              aggregation: { fn: 'MEAN', windowSeconds: h * 3600 },
            })),
            ...windows.map((h) => ({
              name: `departures_${h}h`,
              type: 'FLOAT',
              source: 'delay',
              aggregation: { fn: 'COUNT', windowSeconds: h * 3600 },
            })),
          ],
        },
      },
    );
    await gql(
      `mutation($input: CreateFeatureViewInput!) { createFeatureView(input: $input) { name } }`,
      {
        input: {
          name: 'route_stats',
          entity: 'route',
          source: 'flight_routes',
          ttlSeconds: 30 * 24 * 3600,
          allowedLatenessSeconds: 24 * 3600,
          features: [
            {
              name: 'distance_bucket',
              type: 'INT',
              source: 'distance',
              transform: { kind: 'BIN', edges: [0, 250, 500, 1000, 2000, 6000], closed: 'RIGHT' },
              validation: { min: 1 },
            },
            {
              name: 'mean_delay_24h',
              type: 'FLOAT',
              source: 'delay',
              aggregation: { fn: 'MEAN', windowSeconds: 24 * 3600 },
            },
          ],
        },
      },
    );
    log(
      '2. created entities airport, route and views airport_delays@1 (1h/6h/24h windows), route_stats@1',
    );

    // 3. The streaming path: a producer appends to Redis Streams; the api's consumer ingests.
    const redis = createRedisClient(app.redisTarget, 'demo-producer');
    const prefix = app.redisPrefix;
    const byDeparture = [...flights].sort((a, b) => a.departed - b.departed);
    const started = Date.now();
    for (let i = 0; i < byDeparture.length; i += 5_000) {
      const chunk = byDeparture.slice(i, i + 5_000);
      const toAirports: StreamRecordInput[] = chunk.map((f) => ({
        entityKey: f.origin,
        eventId: f.id,
        eventTs: f.departed,
        knownAt: f.departed,
        fields: { delay: f.delay },
      }));
      const toRoutes: StreamRecordInput[] = chunk.map((f) => ({
        entityKey: `${f.origin}|${f.destination}`,
        eventId: f.id,
        eventTs: f.departed,
        knownAt: f.departed,
        fields: { delay: f.delay, distance: f.distance },
      }));
      await appendToStream(redis, prefix, 'flights', toAirports);
      await appendToStream(redis, prefix, 'flight_routes', toRoutes);
    }
    for (;;) {
      const { featureStreams } = await gql<{
        featureStreams: {
          source: string;
          lag: number;
          pending: number;
          lastDeliveredId: string | null;
        }[];
      }>(`{ featureStreams { source lag pending lastDeliveredId } }`);
      if (
        featureStreams.length === 2 &&
        featureStreams.every((s) => s.lag === 0 && s.pending === 0 && s.lastDeliveredId)
      )
        break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await closeRedis(redis);
    const seconds = (Date.now() - started) / 1000;
    const q = await gql<{
      quarantinedRecords: {
        edges: { node: { entityKey: string; violations: { rule: string; message: string }[] } }[];
      };
    }>(
      `{ quarantinedRecords(first: 100) { edges { node { entityKey violations { rule message } } } } }`,
    );
    const quarantined = q.quarantinedRecords.edges;
    log(
      `3. streamed ${flights.length * 2} records into 2 streams; ingested into PostgreSQL and Redis in ${seconds.toFixed(1)} s (${Math.round((flights.length * 2) / seconds)} records/s)`,
    );
    log(
      `   quarantined ${quarantined.length}${quarantined.length ? `, e.g. ${quarantined[0].node.entityKey}: ${quarantined[0].node.violations[0].message}` : ''}`,
    );

    // 4. Online features, as a model server would read them.
    const refs = [
      'airport_delays:mean_delay_1h',
      'airport_delays:mean_delay_6h',
      'airport_delays:mean_delay_24h',
      'airport_delays:departures_24h',
    ];
    const online = await gql<{
      onlineFeatures: {
        entityKey: string;
        vector: (number | null)[];
        freshness: { view: string; asOf: string; stale: boolean }[];
      }[];
    }>(
      `query($k: [String!]!, $r: [String!]!) { onlineFeatures(entityKeys: $k, featureRefs: $r) { entityKey vector freshness { view asOf stale } } }`,
      { k: ['ATL', 'ORD', 'DFW', 'LAX', 'DEN'], r: refs },
    );
    log('4. online features (mean delay 1h / 6h / 24h, departures 24h):');
    for (const r of online.onlineFeatures) {
      const f = r.freshness[0];
      log(
        `   ${r.entityKey}  ${r.vector.map((v) => (v === null ? 'null' : Number(v).toFixed(1)).padStart(7)).join(' ')}   as of ${f.asOf} ${f.stale ? 'STALE' : 'fresh'}`,
      );
    }

    // 5. A point-in-time training set: each flight at its scheduled departure, label = delay > 15 min.
    const spine = flights.slice(-SPINE).map((f) => ({
      entityKey: f.origin,
      timestamp: new Date(f.scheduled).toISOString(),
      label: f.delay > 15 ? 1 : 0,
    }));
    const ds = await gql<{
      buildDataset: {
        id: string;
        status: string;
        rowCount: number;
        contentHash: string;
        artifactKey: string;
        featureRefs: string[];
      };
    }>(
      `mutation($input: BuildDatasetInput!) { buildDataset(input: $input, wait: true) { id status rowCount contentHash artifactKey featureRefs } }`,
      {
        input: {
          name: 'flights-delay-train',
          featureRefs: [...refs, 'airport_delays:last_delay'],
          rows: spine,
        },
      },
    );
    const snap = ds.buildDataset;
    const table = tableFromIPC(await app.services.artifacts.getBytes(snap.artifactKey));
    const labels = table.getChild('label')?.toArray() as Float64Array;
    log(
      `5. dataset snapshot ${snap.status}: ${snap.rowCount} rows, refs ${snap.featureRefs.join(', ')}`,
    );
    log(
      `   content hash ${snap.contentHash}, artifact ${snap.artifactKey} (${app.services.artifacts.location})`,
    );
    log(
      `   label rate (delay > 15 min): ${((labels.reduce((a, b) => a + b, 0) / labels.length) * 100).toFixed(1)}%`,
    );
    for (const name of snap.featureRefs) {
      const col = table.getChild(name)?.toArray() as ArrayLike<number | null>;
      let nulls = 0;
      for (let i = 0; i < table.numRows; i++) if (table.getChild(name)?.get(i) === null) nulls++;
      log(
        `   ${name.padEnd(34)} nulls ${((nulls / table.numRows) * 100).toFixed(1).padStart(5)}%  first ${String(col[0]).slice(0, 8)}`,
      );
    }
  } finally {
    await app.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
