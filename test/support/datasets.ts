import { tableFromIPC } from 'apache-arrow';
import { type Services } from '../../src/app/services';
import { type ArtifactStore } from '../../src/domain/artifacts/artifact-store';
import { type DatasetSnapshot } from '../../src/domain/features/dataset';
import {
  FeatureType,
  type FeatureSpec,
  type FeatureViewVersion,
} from '../../src/domain/features/feature-definition';
import { Rng } from '../../src/domain/training/rng';

/** A feature read from the source field of its own name, as is, unless `extra` says otherwise. */
export const featureSpec = (
  name: string,
  type: FeatureType,
  extra: Partial<FeatureSpec> = {},
): FeatureSpec => ({
  name,
  type,
  source: name,
  transform: { kind: 'IDENTITY' },
  aggregation: null,
  validation: {},
  ...extra,
});

/**
 * A view of the entity `item` (which the test file creates) reading the source `<name>_src`,
 * late events accepted for 30 days: its first version.
 */
export async function itemView(
  services: Pick<Services, 'featureRegistry'>,
  name: string,
  features: FeatureSpec[],
  ttlSeconds: number,
): Promise<FeatureViewVersion> {
  const { version } = await services.featureRegistry.createView({
    name,
    entity: 'item',
    source: `${name}_src`,
    ttlSeconds,
    allowedLatenessSeconds: 30 * 24 * 3600,
    features,
  });
  return version;
}

/** Reads a snapshot file back into plain rows, the way a training script would. */
export async function readSnapshot(
  artifacts: ArtifactStore,
  key: string,
): Promise<Record<string, unknown>[]> {
  const table = tableFromIPC(await artifacts.getBytes(key));
  return table.toArray().map((row) => {
    const o = row.toJSON() as Record<string, unknown>;
    for (const [k, v] of Object.entries(o))
      if (v && typeof v === 'object' && 'toArray' in v)
        o[k] = Array.from((v as { toArray(): ArrayLike<number> }).toArray());
    return o;
  });
}

export interface FloatRow {
  entityKey: string;
  /** When the values happened (and became known). */
  at: number;
  values: Record<string, number>;
  label: number;
}

/**
 * A READY snapshot through the real feature store: an entity and a view `view` of FLOAT
 * features (identity transforms), one event per row at `at` (known then), and a spine row per
 * row `spineDelayMs` later with its label. Features are the refs `view@1:<name>`.
 */
export async function buildFloatDataset(
  s: Services,
  o: { view: string; features: string[]; rows: FloatRow[]; spineDelayMs?: number },
): Promise<DatasetSnapshot> {
  await s.featureRegistry.createEntity({ name: o.view, joinKeys: [`${o.view}_id`] });
  const { version } = await s.featureRegistry.createView({
    name: o.view,
    entity: o.view,
    source: `${o.view}_src`,
    ttlSeconds: 30 * 86_400,
    allowedLatenessSeconds: 30 * 86_400,
    features: o.features.map((name) => ({
      name,
      type: FeatureType.FLOAT,
      source: name,
      transform: { kind: 'IDENTITY' as const },
      aggregation: null,
      validation: {},
    })),
  });
  await s.ingestion.ingest(
    [version],
    o.rows.map((r, i) => ({
      entityKey: r.entityKey,
      eventId: `e${i}`,
      eventTs: r.at,
      knownAt: r.at,
      fields: r.values,
    })),
    'test',
  );
  const { done } = await s.datasets.build({
    name: `${o.view}-train`,
    featureRefs: [`${o.view}@1:*`],
    spine: o.rows.map((r) => ({
      entityKey: r.entityKey,
      ts: r.at + (o.spineDelayMs ?? 1_000),
      label: r.label,
    })),
  });
  return done;
}

/**
 * A READY snapshot of `rows` customers over the view `cust_stats` (FLOAT `a` and `b`, seeded,
 * known when they happened), labelled by a noisy `a - b > 0`: a task the built-in trainers
 * learn in a few epochs, for the studies' tests.
 */
export async function buildCustomerDataset(s: Services, rows: number): Promise<DatasetSnapshot> {
  const T0 = Date.now() - 10 * 86_400_000;
  const rng = new Rng(5);
  return buildFloatDataset(s, {
    view: 'cust_stats',
    features: ['a', 'b'],
    spineDelayMs: 60_000,
    rows: Array.from({ length: rows }, (_, i) => {
      const values = { a: rng.normal(), b: rng.normal() };
      const label = values.a - values.b + 0.5 * rng.normal() > 0 ? 1 : 0;
      return { entityKey: `c${i}`, at: T0 + i * 1000, values, label };
    }),
  });
}
