import { inputFeatures, type ModelVersion } from '../../domain/registry/model';
import { MicroBatcher } from '../../domain/serving/micro-batcher';
import {
  type ModelRunner,
  type RunnerPressure,
  ServingErrorCode,
} from '../../domain/serving/deployment';
import { DomainError, ErrorCategory } from '../../domain/shared/domain-error';
import { Replica } from './replica';

interface Loaded {
  bytes: Uint8Array;
  width: number;
  /** Replicas warmed up and taking batches. */
  replicas: Replica[];
  /** Replicas being started (loading or warming up). */
  starting: number;
  /** How many replicas the version should run. */
  target: number;
  warmup: number;
  /** One batcher per batching setting (endpoints may share a version with different ones). */
  batchers: Map<string, MicroBatcher<Float32Array, number>>;
}

/**
 * Model versions served by replicas: each a worker thread with its own onnxruntime session,
 * loaded from the version's verified file and warmed up before it takes traffic. Single-row
 * scores go through a micro-batcher per version, which runs one batch per ready replica at
 * once, each on the replica with the fewest batches in flight.
 */
/**
 * A version that failed to load is not tried again for this long: requests to it fail at
 * once with the reason, instead of each re-reading and re-checking its file.
 */
const LOAD_FAILURE_HOLD_MS = 15_000;

export class OnnxModelRunner implements ModelRunner {
  private readonly loading = new Map<string, Promise<Loaded>>();
  private readonly ready = new Set<string>();
  private readonly failures = new Map<string, { reason: string; until: number }>();

  constructor(private readonly bytesOf: (v: ModelVersion) => Promise<Uint8Array>) {}

  async load(v: ModelVersion, warmupRequests: number): Promise<void> {
    await this.loaded(v, warmupRequests);
  }

  isReady(versionId: string): boolean {
    return this.ready.has(versionId);
  }

  loadError(versionId: string): string | null {
    const f = this.failures.get(versionId);
    if (!f) return null;
    if (f.until > Date.now()) return f.reason;
    this.failures.delete(versionId);
    return null;
  }

  async score(
    v: ModelVersion,
    row: Float32Array,
    batching: { maxBatch: number; maxWaitUs: number },
  ): Promise<number> {
    const m = await this.loaded(v, 0);
    if (row.length !== m.width)
      throw new Error(`${v.modelName}@${v.version} takes ${m.width} features, got ${row.length}`);
    const key = `${batching.maxBatch}:${batching.maxWaitUs}`;
    let batcher = m.batchers.get(key);
    if (!batcher) {
      batcher = new MicroBatcher(
        (rows) => this.run(m, rows),
        batching,
        () => m.replicas.length,
      );
      m.batchers.set(key, batcher);
    }
    return batcher.submit(row);
  }

  async scale(v: ModelVersion, replicas: number): Promise<void> {
    const m = await this.loaded(v, 0);
    m.target = replicas;
    const started: Promise<void>[] = [];
    while (m.replicas.length + m.starting < m.target) started.push(this.start(m));
    // Retire the least busy ones first; each stops once its batches are answered.
    while (m.replicas.length > m.target && m.replicas.length > 1) {
      const idlest = m.replicas.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
      m.replicas.splice(m.replicas.indexOf(idlest), 1);
      void idlest.close();
    }
    await Promise.all(started);
  }

  async release(versionId: string): Promise<void> {
    const p = this.loading.get(versionId);
    this.loading.delete(versionId);
    this.settled.delete(versionId);
    this.ready.delete(versionId);
    const m = await p?.catch(() => null);
    if (m) {
      m.target = 0;
      await Promise.all(m.replicas.splice(0).map((r) => r.close()));
    }
  }

  pressure(versionId: string): RunnerPressure | null {
    const loaded = this.settled.get(versionId);
    if (!loaded) return null;
    let depth = 0;
    let arrivals = 0;
    for (const b of loaded.batchers.values()) {
      const d = b.takeDepth();
      depth += d.meanDepth * d.arrivals;
      arrivals += d.arrivals;
    }
    return {
      replicas: loaded.replicas.length,
      queueDepth: arrivals ? depth / arrivals : 0,
      arrivals,
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.loading.keys()].map((id) => this.release(id)));
  }

  /** Versions whose first replica is up, for synchronous lookups. */
  private readonly settled = new Map<string, Loaded>();

  private loaded(v: ModelVersion, warmupRequests: number): Promise<Loaded> {
    let p = this.loading.get(v.id);
    const failed = p ? null : this.loadError(v.id);
    if (failed !== null) return Promise.reject(unavailable(v, failed));
    if (!p) {
      p = (async () => {
        const bytes = await this.bytesOf(v);
        const width = v.signature.inputs[0]?.shape[1] ?? inputFeatures(v).length;
        const m: Loaded = {
          bytes,
          width,
          replicas: [],
          starting: 0,
          target: 1,
          warmup: warmupRequests,
          batchers: new Map(),
        };
        await this.start(m);
        this.settled.set(v.id, m);
        this.ready.add(v.id);
        return m;
      })();
      p.catch((e: unknown) => {
        this.loading.delete(v.id);
        const reason = e instanceof Error ? e.message : String(e);
        this.failures.set(v.id, { reason, until: Date.now() + LOAD_FAILURE_HOLD_MS });
      });
      p = p.catch((e: unknown) => {
        throw e instanceof DomainError
          ? e
          : unavailable(v, e instanceof Error ? e.message : String(e));
      });
      this.loading.set(v.id, p);
    }
    return p;
  }

  /** Starts one replica; it takes batches once warmed up. A crashed one is replaced. */
  private async start(m: Loaded): Promise<void> {
    m.starting++;
    const r = new Replica(m.bytes, m.width, m.warmup, (dead) => {
      const i = m.replicas.indexOf(dead);
      if (i < 0) return;
      m.replicas.splice(i, 1);
      if (m.replicas.length + m.starting < m.target) void this.start(m).catch(() => undefined);
    });
    try {
      await r.ready;
      if (m.replicas.length >= m.target) await r.close();
      else m.replicas.push(r);
    } finally {
      m.starting--;
    }
    // Rows may have queued while no lane was free.
    for (const b of m.batchers.values()) b.kick();
  }

  private async run(m: Loaded, rows: Float32Array[]): Promise<number[]> {
    if (!m.replicas.length) throw new Error('no replica is running');
    const r = m.replicas.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    const x = new Float32Array(rows.length * m.width);
    rows.forEach((row, i) => x.set(row, i * m.width));
    return Array.from(await r.run(x, rows.length));
  }
}

function unavailable(v: ModelVersion, reason: string): DomainError {
  return new DomainError(
    ErrorCategory.UNAVAILABLE,
    ServingErrorCode.MODEL_UNAVAILABLE,
    `${v.modelName}@${v.version} cannot be served: its model did not load (${reason})`,
    { version: `${v.modelName}@${v.version}` },
  );
}
