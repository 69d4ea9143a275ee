import { type SpineRow } from '../src/domain/features/dataset';
import { writeParquet } from '../src/infra/datasets/parquet';
import { PostgresOfflineStore } from '../src/infra/db/features/offline-store';
import { round, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';
import { asTable, DAY, FIELDS, floatFeatures, history, rng, T0 } from './support/synthetic-history';

/**
 * features-delta-read: what deltas cost the evaluator's reads (ADR 0035). A history of
 * DELTA_READ_ROWS rows (default 2M, 100k entities, 10 FLOAT features) loaded by a backfill is
 * one base segment per bucket; the same spine is joined by the evaluator then, and again after
 * one compaction of a new event for every entity, which leaves a delta in every bucket holding
 * a version of every entity, the worst case of streaming between two base merges (every
 * entity read through objects, not in place). Reports both times (each after a warm-up
 * join) and their ratio, `delta_read_ratio`.
 */
const ENTITIES = 100_000;

export async function main(): Promise<void> {
  const rows = Number(process.env.DELTA_READ_ROWS ?? 2_000_000);
  const perEntity = Math.max(1, Math.round(rows / ENTITIES / 1.02));
  const p = await startBenchPlatform('features_delta_read', {
    FEATURE_STREAM_CONSUMER: 'off',
    OFFLINE_COMPACTION_INTERVAL_MS: '0',
  });
  try {
    const s = p.app.services;
    await s.featureRegistry.createEntity({ name: 'thing', joinKeys: ['id'] });
    await s.featureRegistry.createView({
      name: 'delta_read',
      entity: 'thing',
      source: 'delta_read_src',
      ttlSeconds: 400 * 86_400,
      allowedLatenessSeconds: 400 * 86_400,
      features: floatFeatures(),
    });
    const h = history(ENTITIES, perEntity);
    await s.artifacts.put('uploads/delta-read.parquet', await writeParquet(asTable(h)));
    const [loaded] = await s.backfill.file(
      'delta_read',
      { artifactKey: 'uploads/delta-read.parquet', format: null },
      'bench',
    );
    if (loaded.quarantined) throw new Error(`backfill: ${JSON.stringify(loaded)}`);

    const r = rng(3);
    const spine: SpineRow[] = Array.from({ length: 500_000 }, () => ({
      entityKey: `e${Math.floor(r() * ENTITIES)}`,
      ts: T0 + Math.floor((r() * 95 * DAY) / 1000) * 1000,
      label: null,
    }));
    const refs = await s.featureRegistry.resolveRefs(
      Array.from({ length: FIELDS }, (_, f) => `delta_read:f${f}`),
    );
    const join = async () => {
      const t = process.hrtime.bigint();
      await s.datasets.pointInTimeJoin(
        { id: '00000000-0000-0000-0000-000000000000', rowCount: spine.length },
        refs,
        spine,
      );
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    await join(); // warm-up
    const base = await join();

    // One new event per entity, ingested and compacted: a delta in every bucket.
    const at = T0 + 92 * DAY;
    const fresh = Array.from({ length: ENTITIES }, (_, e) => ({
      entityKey: `e${e}`,
      eventId: `fresh-${e}`,
      eventTs: at,
      knownAt: at,
      fields: Object.fromEntries(Array.from({ length: FIELDS }, (_, f) => [`f${f}`, e + f])),
    }));
    const [version] = await s.featureRegistry.liveVersions('delta_read');
    for (let i = 0; i < fresh.length; i += 10_000)
      await s.ingestion.ingest([version], fresh.slice(i, i + 10_000), 'bench');
    const compacted = await s.compaction.compact('delta_read', null);
    const [table] = await new PostgresOfflineStore(p.app.db, s.artifacts).openTables([version.id]);
    const deltas = table.files.filter((f) => f.run > 0).length;
    await join(); // warm-up
    const withDeltas = await join();

    writeResult('features-delta-read', {
      feature_rows: h.n + ENTITIES,
      label_rows: spine.length,
      compacted_rows: compacted.rows,
      delta_files: deltas,
      base_only_seconds: round(base, 2),
      with_deltas_seconds: round(withDeltas, 2),
      delta_read_ratio: round(withDeltas / base, 2),
    });
  } finally {
    await p.close();
  }
}
