import * as ort from 'onnxruntime-node';
import { type ModelVersion } from '../../domain/registry/model';
import { MicroBatcher } from '../../domain/serving/micro-batcher';
import { type ModelRunner } from '../../domain/serving/deployment';

interface Loaded {
  session: ort.InferenceSession;
  input: string;
  output: string;
  width: number;
  /** One batcher per batching setting (endpoints may share a version with different ones). */
  batchers: Map<string, MicroBatcher<Float32Array, number>>;
}

/**
 * onnxruntime-node sessions, one per version, loaded from the version's verified file and
 * warmed up before they are ready; single-row scores go through a micro-batcher per version.
 */
export class OnnxModelRunner implements ModelRunner {
  private readonly loading = new Map<string, Promise<Loaded>>();
  private readonly ready = new Set<string>();

  constructor(private readonly bytesOf: (v: ModelVersion) => Promise<Uint8Array>) {}

  async load(v: ModelVersion, warmupRequests: number): Promise<void> {
    await this.loaded(v, warmupRequests);
  }

  isReady(versionId: string): boolean {
    return this.ready.has(versionId);
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
      batcher = new MicroBatcher((rows) => this.run(m, rows), batching);
      m.batchers.set(key, batcher);
    }
    return batcher.submit(row);
  }

  async close(): Promise<void> {
    for (const p of this.loading.values()) await (await p.catch(() => null))?.session.release();
    this.loading.clear();
    this.ready.clear();
  }

  private loaded(v: ModelVersion, warmupRequests: number): Promise<Loaded> {
    let p = this.loading.get(v.id);
    if (!p) {
      p = (async () => {
        // One thread per session: many versions share few cores, and ORT's spinning thread
        // pools would otherwise steal them from whichever session runs next.
        const session = await ort.InferenceSession.create(await this.bytesOf(v), {
          intraOpNumThreads: 1,
          interOpNumThreads: 1,
        });
        const width =
          v.signature.inputs[0]?.shape[1] ?? (v.signature.features ?? v.featureRefs).length;
        const m: Loaded = {
          session,
          input: session.inputNames[0],
          output: session.outputNames[0],
          width,
          batchers: new Map(),
        };
        // Warm-up: the first calls allocate and optimize; the version is ready after them.
        for (let i = 0; i < warmupRequests; i++) await this.run(m, [new Float32Array(width)]);
        this.ready.add(v.id);
        return m;
      })();
      p.catch(() => this.loading.delete(v.id));
      this.loading.set(v.id, p);
    }
    return p;
  }

  private async run(m: Loaded, rows: Float32Array[]): Promise<number[]> {
    const x = new Float32Array(rows.length * m.width);
    rows.forEach((r, i) => x.set(r, i * m.width));
    const out = await m.session.run({
      [m.input]: new ort.Tensor('float32', x, [rows.length, m.width]),
    });
    return Array.from(out[m.output].data as Float32Array);
  }
}
