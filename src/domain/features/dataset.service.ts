import { TimeSlice } from '../shared/time-slice';
import { createHash } from 'node:crypto';
import { type ArtifactRef, type ArtifactStore } from '../artifacts/artifact-store';
import { type EventBus } from '../events/event-bus';
import { type Clock } from '../shared/clock';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { FeatureType, type FeatureValue } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type FeatureRegistryService, type ResolvedRef } from './feature-registry.service';
import { type OfflineStore } from './feature-store.ports';
import {
  type DatasetEncoder,
  type DatasetEvent,
  type DatasetRepository,
  type DatasetSnapshot,
  DatasetStatus,
  type FeatureColumn,
  JoinEngine,
  newFeatureColumn,
  setColumnValue,
  type SpineRow,
  type SqlJoinEngine,
} from './dataset';
import { evaluateViewInto, NO_EVENTS, type RowSink } from './point-in-time';
import { type PointInTimeSql, pointInTimeSql, SqlDialect } from './point-in-time-sql';
import { requireColumns, type TableFile, type TableFileReader, timeOf } from './table-file';

/** The two forms a snapshot is downloaded in. */
export type SnapshotFormat = 'arrow' | 'parquet';

const datasetTopic = (id: string) => `dataset:${id}`;
export const MAX_SPINE_ROWS = 5_000_000;

/**
 * Point-in-time training sets. For every spine row (entity, t) and every feature ref, the
 * value known at t, computed by `evaluateView` over the entity's offline history — the same
 * function online reads use. The result is written to the artifact store as one file whose
 * SHA-256 is the snapshot's content hash.
 */
export class DatasetService {
  constructor(
    private readonly registry: FeatureRegistryService,
    private readonly offline: OfflineStore,
    private readonly repo: DatasetRepository,
    private readonly artifacts: ArtifactStore,
    private readonly encoder: DatasetEncoder,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly files: TableFileReader,
    /** This process, as the holder of the builds it runs. */
    private readonly builder = 'local',
    /** A build whose holder has not beaten this long is taken over (`resumeStalled`). */
    private readonly buildTtlMs = 30_000,
    /** A build's end and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
    /**
     * The SQL engine, where this process has one, and the history (rows stored, over the
     * build's view versions) from which a build that names no engine runs on it.
     */
    private readonly engines: { sql: SqlJoinEngine | null; autoMinRows: number } = {
      sql: null,
      autoMinRows: Infinity,
    },
  ) {}

  /**
   * Records the snapshot as BUILDING and builds it in the background; `done` settles when
   * finished. The spine is given as rows or, when larger than a request may carry, as a
   * file in the artifact store (columns `entity_key`, `ts`, optional `label`).
   */
  /**
   * The point-in-time join for these features as SQL in a dialect, for a team that runs it
   * on its own engine over the same history (docs/adr/0031).
   */
  async sql(featureRefs: readonly string[], dialect: SqlDialect): Promise<PointInTimeSql> {
    if (featureRefs.length === 0) throw invalid('featureRefs must not be empty');
    const resolved = distinct(await this.registry.resolveRefs(featureRefs));
    return pointInTimeSql(resolved, dialect);
  }

  async build(input: {
    name: string;
    featureRefs: readonly string[];
    spine?: SpineRow[];
    spineFile?: TableFile;
    /** The same key twice is one snapshot (a workflow step retried after a crash). */
    idempotencyKey?: string | null;
    /** Null: DuckDB from `autoMinRows` rows of history (and open tables for all of it), else the evaluator. */
    engine?: JoinEngine | null;
  }): Promise<{ snapshot: DatasetSnapshot; done: Promise<DatasetSnapshot> }> {
    if (!/^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$/.test(input.name))
      throw invalid('name must be 1-100 characters of letters, digits, space and . _ : -');
    if (input.featureRefs.length === 0) throw invalid('featureRefs must not be empty');
    if ((input.spine === undefined) === (input.spineFile === undefined))
      throw invalid('give the spine as rows or as spineFile, one of the two');
    const spine = input.spine ?? (await this.readSpine(input.spineFile as TableFile));
    return this.buildFrom({ ...input, spine });
  }

  private async buildFrom(input: {
    name: string;
    featureRefs: readonly string[];
    spine: SpineRow[];
    idempotencyKey?: string | null;
    engine?: JoinEngine | null;
  }): Promise<{ snapshot: DatasetSnapshot; done: Promise<DatasetSnapshot> }> {
    if (input.spine.length === 0 || input.spine.length > MAX_SPINE_ROWS)
      throw invalid(`the spine needs 1 to ${MAX_SPINE_ROWS} rows`);
    input.spine.forEach((r, i) => {
      if (!r.entityKey || !Number.isFinite(r.ts))
        throw invalid(`spine row ${i} needs an entityKey and a valid timestamp`, { row: i });
      if (r.label !== null && !Number.isFinite(r.label))
        throw invalid(`spine row ${i} has a label that is not a number`, { row: i });
    });
    const resolved = distinct(await this.registry.resolveRefs(input.featureRefs));
    const engine = await this.engineFor(input.engine ?? null, resolved);
    const sha = spineHash(input.spine);
    // The spine is stored before the build is recorded (named by its content: the same spine
    // twice is one file), so a recorded build can always be taken over and finished.
    const spineFile: TableFile = {
      artifactKey: `datasets/spines/${sha}.${this.encoder.format}`,
      format: null,
    };
    await this.artifacts.put(spineFile.artifactKey, this.encoder.encode(spineColumns(input.spine)));
    const { snapshot, created } = await this.repo.create(
      {
        name: input.name,
        status: DatasetStatus.BUILDING,
        featureRefs: resolved.map((r) => r.ref),
        featureViewVersionIds: [...new Set(resolved.map((r) => r.version.id))],
        spineSha256: sha,
        rowCount: input.spine.length,
        columns: [
          { name: 'entity_key', type: FeatureType.STRING },
          { name: 'ts', type: 'TIMESTAMP' },
          { name: 'label', type: FeatureType.FLOAT },
          ...resolved.map((r) => ({ name: r.ref, type: r.type })),
        ],
        contentHash: null,
        artifact: null,
        parquet: null,
        spineFile,
        engine,
        progress: 0,
        error: null,
        completedAt: null,
      },
      input.idempotencyKey ?? null,
    );
    if (!created) return { snapshot, done: this.settled(snapshot.id) };
    const done = this.begin(snapshot, resolved, input.spine);
    done.catch(() => undefined);
    return { snapshot, done };
  }

  /** The engine asked for, or the one the history's size calls for. */
  private async engineFor(asked: JoinEngine | null, refs: ResolvedRef[]): Promise<JoinEngine> {
    if (asked === JoinEngine.DUCKDB && !this.engines.sql)
      throw new InvalidInputError(
        FeatureErrorCode.ENGINE_UNAVAILABLE,
        'this server has no DuckDB engine (DATASET_DUCKDB=off); build on EVALUATOR',
        { engine: asked },
      );
    if (asked === JoinEngine.EVALUATOR) return asked;
    if (!asked && (!this.engines.sql || !Number.isFinite(this.engines.autoMinRows)))
      return JoinEngine.EVALUATOR;
    const ids = [...new Set(refs.map((r) => r.version.id))];
    if (!asked) {
      const stored = (await this.offline.compactionStatus(ids)).reduce(
        (n, c) => n + c.compactedRows + c.pendingRows,
        0,
      );
      if (stored < this.engines.autoMinRows) return JoinEngine.EVALUATOR;
    }
    // What DuckDB cannot run: a feature the SQL does not express, or history in segments
    // written before open tables.
    let why: string | null = null;
    try {
      pointInTimeSql(refs, SqlDialect.DUCKDB);
    } catch (e) {
      if (!(e instanceof InvalidInputError)) throw e;
      why = e.message;
    }
    if (!why && !(await this.offline.openTables(ids)).every((t) => t.complete))
      why =
        'part of the history is in segments written before open tables (the next compaction of each writes its Parquet file)';
    if (!why) return JoinEngine.DUCKDB;
    if (!asked) return JoinEngine.EVALUATOR;
    throw new InvalidInputError(
      FeatureErrorCode.ENGINE_UNAVAILABLE,
      `DuckDB cannot build this: ${why}`,
      {
        engine: asked,
      },
    );
  }

  /**
   * The build's steps: held by this process (it beats while it builds), the join, then READY
   * by compare-and-set. A process that dies on the way leaves a build another takes over from
   * its stored spine (`resumeStalled`).
   */
  private async begin(
    s: DatasetSnapshot,
    refs: ResolvedRef[],
    spine: SpineRow[],
  ): Promise<DatasetSnapshot> {
    if (!(await this.repo.claimBuild(s.id, this.builder, null))) return this.settled(s.id);
    return this.materialize(s, refs, spine);
  }

  /**
   * Takes over builds whose process stopped beating (it died) and builds them again from
   * their stored spine; one recorded before spines were stored first fails, to be built again.
   * Run by one process at a time (a lease); the claim is a compare-and-set anyway.
   */
  async resumeStalled(): Promise<string[]> {
    const taken: string[] = [];
    for (const s of await this.repo.stalledBuilds(this.buildTtlMs)) {
      if (!(await this.repo.claimBuild(s.id, this.builder, this.buildTtlMs))) continue;
      taken.push(s.id);
      if (!s.spineFile) {
        await this.end(s, DatasetStatus.FAILED, {
          error: 'the process building it stopped before its spine was stored; build it again',
        });
        continue;
      }
      const spine = await this.readSpine(s.spineFile);
      const refs = await this.registry.resolveRefs(s.featureRefs);
      void this.materialize(s, refs, spine).catch(() => undefined);
    }
    return taken;
  }

  async get(id: string): Promise<DatasetSnapshot> {
    const [d] = await this.repo.findByIds([id]);
    if (!d)
      throw new NotFoundError(FeatureErrorCode.DATASET_NOT_FOUND, `No dataset snapshot ${id}`);
    return d;
  }

  /**
   * The build's progress as it happens: the snapshot's current state first (so a subscriber
   * that arrives late still learns how it ended), then live events, ending with READY or
   * FAILED. Subscribed before the state is read, so no transition falls in between.
   */
  async *progress(id: string): AsyncGenerator<DatasetEvent> {
    const live = this.events.subscribe<DatasetEvent>(datasetTopic(id));
    try {
      await live.ready;
      const s = await this.get(id);
      yield {
        datasetId: s.id,
        status: s.status,
        progress: s.progress,
        rowsDone: Math.round(s.progress * s.rowCount),
        rowCount: s.rowCount,
        error: s.error,
      };
      if (s.status !== DatasetStatus.BUILDING) return;
      for await (const e of live) {
        yield e;
        if (e.status !== DatasetStatus.BUILDING) return;
      }
    } finally {
      await live.close();
    }
  }

  /** Resolves with the snapshot once READY, rejects once FAILED. */
  private async settled(id: string): Promise<DatasetSnapshot> {
    for await (const e of this.progress(id)) {
      if (e.status === DatasetStatus.READY) return this.get(id);
      if (e.status === DatasetStatus.FAILED)
        throw new Error(`dataset snapshot ${id} failed: ${e.error ?? ''}`);
    }
    return this.get(id);
  }

  byIds(ids: readonly string[]): Promise<DatasetSnapshot[]> {
    return this.repo.findByIds(ids);
  }

  /**
   * A READY snapshot's file for download, verified as it streams. Parquet is written from
   * the Arrow file on the first download and kept (the conversion is deterministic, so two
   * first downloads at once store the same bytes). `contentHash` is the snapshot's, whatever
   * the format; `ref.sha256` is that of the bytes served.
   */
  async open(
    id: string,
    format: SnapshotFormat,
  ): Promise<{ snapshot: DatasetSnapshot; ref: ArtifactRef; body: AsyncIterable<Uint8Array> }> {
    const snapshot = await this.get(id);
    if (snapshot.status !== DatasetStatus.READY || !snapshot.artifact)
      throw new ConflictError(
        FeatureErrorCode.DATASET_NOT_READY,
        `Dataset snapshot ${id} is ${snapshot.status}: only a READY snapshot can be downloaded`,
        { status: snapshot.status },
      );
    let ref = format === 'arrow' ? snapshot.artifact : snapshot.parquet;
    if (!ref) {
      const arrow = await this.artifacts.getBytes(snapshot.artifact.key, snapshot.artifact.sha256);
      ref = await this.artifacts.put(
        `datasets/${snapshot.id}.parquet`,
        await this.encoder.toParquet(arrow),
      );
      await this.repo.update(snapshot.id, { parquet: ref });
    }
    return { snapshot, ref, body: await this.artifacts.get(ref.key, ref.sha256) };
  }

  private async readSpine(file: TableFile): Promise<SpineRow[]> {
    const table = await this.files.read(file);
    if (table.length > MAX_SPINE_ROWS)
      throw invalid(`the spine needs 1 to ${MAX_SPINE_ROWS} rows (the file has ${table.length})`);
    const [entity, ts] = requireColumns(table, file, ['entity_key', 'ts']);
    const label = table.column('label');
    const spine: SpineRow[] = new Array<SpineRow>(table.length);
    for (let i = 0; i < table.length; i++) {
      const raw = entity.get(i);
      const l = label?.get(i);
      spine[i] = {
        entityKey:
          typeof raw === 'string' ? raw : raw === null || raw === undefined ? '' : String(raw),
        ts: timeOf(ts.get(i)),
        label: l === null || l === undefined ? null : Number(l),
      };
    }
    return spine;
  }

  private async materialize(
    s: DatasetSnapshot,
    refs: ResolvedRef[],
    spine: SpineRow[],
  ): Promise<DatasetSnapshot> {
    let mine = true;
    const beat = setInterval(
      () =>
        void this.repo
          .heartbeat(s.id, this.builder)
          .then((ok) => (mine = ok))
          .catch(() => undefined),
      Math.max(100, Math.floor(this.buildTtlMs / 4)),
    );
    beat.unref?.();
    try {
      const columns =
        s.engine === JoinEngine.DUCKDB
          ? await this.sqlJoin(s, refs, spine)
          : await this.pointInTimeJoin(s, refs, spine);
      if (!mine) return this.settled(s.id);
      const bytes = this.encoder.encode([
        ...spineColumns(spine),
        ...refs.map((r, i) => ({ name: r.ref, type: r.type, values: columns[i] })),
      ]);
      // A file of this build's own: a builder that lost the build never overwrites the
      // file of the one that won it.
      const artifact = await this.artifacts.put(
        `datasets/${s.id}-${globalThis.crypto.randomUUID().slice(0, 8)}.${this.encoder.format}`,
        bytes,
      );
      const ended = await this.end(s, DatasetStatus.READY, {
        contentHash: artifact.sha256,
        artifact,
      });
      return ended ?? this.settled(s.id);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      await this.end(s, DatasetStatus.FAILED, { error }).catch(() => undefined);
      throw e;
    } finally {
      clearInterval(beat);
    }
  }

  /** READY or FAILED, with its event, if this process still holds the build; else null. */
  private async end(
    s: DatasetSnapshot,
    status: DatasetStatus.READY | DatasetStatus.FAILED,
    patch: Partial<Pick<DatasetSnapshot, 'contentHash' | 'artifact' | 'error'>>,
  ): Promise<DatasetSnapshot | null> {
    const completedAt = this.clock.now();
    const progress = status === DatasetStatus.READY ? 1 : 0;
    const done = await this.uow.run(async () => {
      if (
        !(await this.repo.finishBuild(s.id, this.builder, {
          status,
          progress,
          completedAt,
          ...patch,
        }))
      )
        return false;
      await this.publish(
        s,
        status,
        progress,
        status === DatasetStatus.READY ? s.rowCount : 0,
        patch.error ?? null,
      );
      return true;
    });
    return done ? { ...s, status, progress, completedAt, ...patch } : null;
  }

  /** The join on the SQL engine, its progress published as the evaluator's is. */
  private async sqlJoin(
    s: Pick<DatasetSnapshot, 'id' | 'rowCount'>,
    refs: ResolvedRef[],
    spine: SpineRow[],
  ): Promise<FeatureColumn[]> {
    if (!this.engines.sql)
      throw new Error(
        'this build runs on DuckDB, which this process does not have (DATASET_DUCKDB=off)',
      );
    const report = this.progressReporter(s);
    // The engine tells its progress synchronously: the events go out in order, one after the
    // other, and the build waits for the last (a failed publish fails it, as the evaluator's).
    let chain = Promise.resolve();
    const columns = await this.engines.sql.join(refs, spine, (fraction) => {
      chain = chain.then(() => report(fraction));
      chain.catch(() => undefined); // awaited below
    });
    await chain;
    return columns;
  }

  /**
   * Publishes a build's BUILDING progress as it goes: at most about twenty events, each at
   * least 5 % past the one before; never the end, which READY says.
   */
  private progressReporter(
    s: Pick<DatasetSnapshot, 'id' | 'rowCount'>,
  ): (fraction: number) => Promise<void> {
    let last = 0;
    return async (fraction) => {
      if (fraction >= 1 || fraction - last < 1 / 20) return;
      last = fraction;
      await this.publish(
        s,
        DatasetStatus.BUILDING,
        fraction,
        Math.round(fraction * s.rowCount),
        null,
      );
    };
  }

  /** Column per ref, row per spine row. One pass over each view version's history, entity by entity. */
  async pointInTimeJoin(
    s: Pick<DatasetSnapshot, 'id' | 'rowCount'>,
    refs: ResolvedRef[],
    spine: SpineRow[],
  ): Promise<FeatureColumn[]> {
    const columns = refs.map((r) => newFeatureColumn(r.type, spine.length));
    const { entityKeys, idOf, start, order } = groupRows(spine);
    const versions = [...new Map(refs.map((r) => [r.version.id, r.version])).values()];
    const totalWork = entityKeys.length * versions.length;
    let done = 0;
    const report = this.progressReporter(s);
    for (const v of versions) {
      const sink = new ColumnSink(
        v.schema.features.length,
        refs.flatMap((r, i) =>
          r.version.id === v.id ? [{ column: columns[i], feature: r.position }] : [],
        ),
      );
      const seen = new Set<string>();
      const offline = { nullWhenStale: true };
      // The join runs in the api's event loop: it gives requests a turn every few ms.
      const slice = new TimeSlice();
      for await (const batch of this.offline.historyByEntity(v, entityKeys)) {
        for (const { entityKey, events } of batch) {
          if (slice.due()) await slice.pause();
          seen.add(entityKey);
          const id = idOf.get(entityKey);
          if (id === undefined) continue;
          for (let k = start[id]; k < start[id + 1]; k++) {
            sink.row = order[k];
            evaluateViewInto(v.schema, events, spine[sink.row].ts, offline, sink);
          }
        }
        done += batch.length;
        await report(done / totalWork);
      }
      // Entities with no history: the empty-history values (count 0, others null).
      for (const key of entityKeys) {
        if (slice.due()) await slice.pause();
        if (seen.has(key)) continue;
        const id = idOf.get(key) as number;
        for (let k = start[id]; k < start[id + 1]; k++) {
          sink.row = order[k];
          evaluateViewInto(v.schema, NO_EVENTS, 0, offline, sink);
        }
      }
    }
    return columns;
  }

  private async publish(
    s: Pick<DatasetSnapshot, 'id' | 'rowCount'>,
    status: DatasetStatus,
    progress: number,
    rowsDone: number,
    error: string | null,
  ): Promise<void> {
    const e: DatasetEvent = {
      datasetId: s.id,
      status,
      progress,
      rowsDone,
      rowCount: s.rowCount,
      error,
    };
    await this.events.publish(datasetTopic(s.id), e);
  }
}

/** A dataset's columns are its features: one feature named twice would be two equal columns. */
function distinct(resolved: ResolvedRef[]): ResolvedRef[] {
  const seen = new Set<string>();
  for (const r of resolved) {
    if (seen.has(r.ref))
      throw new InvalidInputError(
        FeatureErrorCode.DUPLICATE_FEATURE,
        `${r.ref} is named more than once (a view:* ref includes every feature of the view)`,
        { ref: r.ref },
      );
    seen.add(r.ref);
  }
  return resolved;
}

function invalid(message: string, details?: Record<string, unknown>): InvalidInputError {
  return new InvalidInputError(FeatureErrorCode.INVALID_DATASET_SPEC, message, details);
}

export function spineHash(spine: readonly SpineRow[]): string {
  const h = createHash('sha256');
  for (const r of spine) h.update(`${r.entityKey}\u0000${r.ts}\u0000${r.label ?? ''}\n`);
  return h.digest('hex');
}

/** Routes a view's evaluated features to the joined columns that asked for them. */
class ColumnSink implements RowSink {
  row = 0;
  /** Per feature of the view, the columns it fills (a ref may appear twice). */
  private readonly targets: FeatureColumn[][];

  constructor(features: number, wanted: { column: FeatureColumn; feature: number }[]) {
    this.targets = Array.from({ length: features }, () => []);
    for (const w of wanted) this.targets[w.feature].push(w.column);
  }

  freshness(): void {
    // A joined row carries values only (nulls beyond the TTL say the rest).
  }

  set(feature: number, value: FeatureValue): void {
    const cols = this.targets[feature];
    if (cols.length === 1) setColumnValue(cols[0], this.row, value);
    else for (let k = 0; k < cols.length; k++) setColumnValue(cols[k], this.row, value);
  }
}

/** Spine rows grouped by entity in one counting sort: no array per entity. */
function groupRows(spine: readonly SpineRow[]): {
  entityKeys: string[];
  /** Rows of an entity: `order[start[id]]` … `order[start[id + 1] - 1]`. */
  idOf: Map<string, number>;
  start: Int32Array;
  order: Int32Array;
} {
  const ids = new Map<string, number>();
  const idOf = new Int32Array(spine.length);
  for (let i = 0; i < spine.length; i++) {
    let id = ids.get(spine[i].entityKey);
    if (id === undefined) ids.set(spine[i].entityKey, (id = ids.size));
    idOf[i] = id;
  }
  const start = new Int32Array(ids.size + 1);
  for (let i = 0; i < spine.length; i++) start[idOf[i] + 1]++;
  for (let e = 0; e < ids.size; e++) start[e + 1] += start[e];
  const order = new Int32Array(spine.length);
  const cursor = start.slice(0, ids.size);
  for (let i = 0; i < spine.length; i++) order[cursor[idOf[i]]++] = i;
  return { entityKeys: [...ids.keys()], idOf: ids, start, order };
}

/** The spine's three columns, as a dataset file and a stored spine both begin. */
function spineColumns(spine: SpineRow[]) {
  return [
    { name: 'entity_key', type: 'STRING_KEY' as const, values: spine.map((r) => r.entityKey) },
    { name: 'ts', type: 'TIMESTAMP' as const, values: spine.map((r) => r.ts) },
    { name: 'label', type: FeatureType.FLOAT, values: spine.map((r) => r.label) },
  ];
}
