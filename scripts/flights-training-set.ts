import { type Services } from '../src/app/services';
import { type DatasetSnapshot } from '../src/domain/features/dataset';
import {
  AggregationFn,
  type FeatureViewVersion,
  FeatureType,
} from '../src/domain/features/feature-definition';
import { type Flight, readFlights } from '../src/infra/datasets/flights';

/**
 * A delay-prediction training set from real flights (vega-datasets' flights-3m.parquet),
 * shared by `npm run demo:train` and bench/training-trainers. Departure delays per origin
 * airport go through the feature store (event time = actual departure, when a delay becomes
 * known); each of the last `spine` flights becomes a row an hour before its scheduled
 * departure, labelled 1 when it left more than 15 minutes late.
 */
export const DELAY_VIEW = 'airport_delays';

/** Hyperparameters of the built-in trainers on this set: demo:train, its test and the bench. */
export const FLIGHTS_TRAINER_SETTINGS: Record<string, Record<string, unknown>> = {
  logistic_regression: { epochs: 20, learningRate: 0.1, batchSize: 512 },
  mlp: { epochs: 20, learningRate: 0.002, batchSize: 256, hiddenUnits: [32, 16] },
  gbdt: { trees: 100, maxDepth: 5, learningRate: 0.1, minSamplesLeaf: 50 },
};

export async function buildFlightsTrainingSet(
  s: Services,
  o: { flights: number; spine: number; name: string; log?: (msg: string) => void },
): Promise<DatasetSnapshot> {
  return (await buildFlightsSets(s, { ...o, heldOut: 0 })).train;
}

/**
 * As above, plus a held-out snapshot of the `heldOut` flights after the training rows (the
 * rows a model is evaluated on before promotion).
 */
export async function buildFlightsSets(
  s: Services,
  o: { flights: number; spine: number; heldOut: number; name: string; log?: (msg: string) => void },
): Promise<{ train: DatasetSnapshot; heldOut: DatasetSnapshot | null }> {
  const log = o.log ?? (() => undefined);
  const flights = await readFlights(0, o.flights);
  const version = await createDelayView(s);
  await ingestDelays(s, version, flights);
  log(`ingested ${flights.length} flights into ${DELAY_VIEW}@${version.version}`);
  const build = async (name: string, slice: typeof flights) => {
    const snapshot = await buildDelaySet(s, version, name, slice);
    log(`built ${snapshot.name}: ${snapshot.rowCount} rows, hash ${snapshot.contentHash}`);
    return snapshot;
  };
  const end = flights.length - o.heldOut;
  const train = await build(o.name, flights.slice(end - o.spine, end));
  const heldOut = o.heldOut > 0 ? await build(`${o.name}-heldout`, flights.slice(end)) : null;
  return { train, heldOut };
}

/** The `airport` entity and the delay view: last delay, and mean, max and count over 1, 6 and 24 h. */
export async function createDelayView(s: Services): Promise<FeatureViewVersion> {
  await s.featureRegistry.createEntity({ name: 'airport', joinKeys: ['origin'] });
  const windows = [1, 6, 24];
  const agg = (name: string, fn: AggregationFn, hours: number) => ({
    name,
    type: FeatureType.FLOAT,
    source: 'delay',
    transform: { kind: 'IDENTITY' as const },
    aggregation: { fn, windowSeconds: hours * 3600 },
    validation: {},
  });
  const { version } = await s.featureRegistry.createView({
    name: DELAY_VIEW,
    entity: 'airport',
    source: 'flights',
    ttlSeconds: 2 * 86_400,
    allowedLatenessSeconds: 86_400,
    features: [
      {
        name: 'last_delay',
        type: FeatureType.FLOAT,
        source: 'delay',
        transform: { kind: 'IDENTITY' },
        aggregation: null,
        validation: {},
      },
      ...windows.map((h) => agg(`mean_delay_${h}h`, AggregationFn.MEAN, h)),
      ...windows.map((h) => agg(`max_delay_${h}h`, AggregationFn.MAX, h)),
      ...windows.map((h) => agg(`departures_${h}h`, AggregationFn.COUNT, h)),
    ],
  });
  return version;
}

/** Each departure's delay, known from the moment it leaves, in departure order. */
export async function ingestDelays(
  s: Services,
  version: FeatureViewVersion,
  flights: readonly Flight[],
): Promise<void> {
  const byDeparture = [...flights].sort((a, b) => a.departed - b.departed);
  for (let i = 0; i < byDeparture.length; i += 5_000) {
    await s.ingestion.ingest(
      [version],
      byDeparture.slice(i, i + 5_000).map((f) => ({
        entityKey: f.origin,
        eventId: f.id,
        eventTs: f.departed,
        knownAt: f.departed,
        fields: { delay: f.delayMinutes },
      })),
      'flights',
    );
  }
}

/** A point-in-time snapshot of every feature of the delay view, one row per flight. */
export async function buildDelaySet(
  s: Services,
  version: FeatureViewVersion,
  name: string,
  flights: readonly Flight[],
  scoredAt?: (f: Flight) => number,
): Promise<DatasetSnapshot> {
  const { done } = await s.datasets.build({
    name,
    featureRefs: [`${DELAY_VIEW}@${version.version}:*`],
    spine: delaySpine(flights, scoredAt),
  });
  return done;
}

/**
 * Spine rows: each flight at the time it is scored (by default an hour before its scheduled
 * departure), 1 when it left more than 15 minutes late.
 */
export function delaySpine(
  flights: readonly Flight[],
  scoredAt: (f: Flight) => number = (f) => f.scheduled - 3_600_000,
): { entityKey: string; ts: number; label: number }[] {
  return flights.map((f) => ({ entityKey: f.origin, ts: scoredAt(f), label: isLate(f) ? 1 : 0 }));
}

export const isLate = (f: Flight): boolean => f.delayMinutes > 15;
