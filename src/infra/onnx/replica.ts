import { Worker } from 'node:worker_threads';

/**
 * The replica's thread: plain JavaScript evaluated by `new Worker(…, { eval: true })`, so it
 * runs the same from compiled output and from the test runner's transpiled sources. It loads
 * the model into its own onnxruntime session (one intra-op thread), runs the warm-up
 * requests, says ready, then answers `{ id, x, n }` with `{ id, y }` (the output column) or
 * `{ id, error }`.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const message = (e) => String((e && e.message) || e);
(async () => {
  // Failures reach the caller as errors (and the canary's error count); ORT's own log of
  // them on stderr would only repeat them without the endpoint or version.
  const session = await ort.InferenceSession.create(workerData.bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    logSeverityLevel: 4,
  });
  const input = session.inputNames[0];
  const output = session.outputNames[0];
  const width = workerData.width;
  const run = async (x, n) =>
    (await session.run({ [input]: new ort.Tensor('float32', x, [n, width]) }))[output].data;
  for (let i = 0; i < workerData.warmup; i++) await run(new Float32Array(width), 1);
  parentPort.on('message', async (m) => {
    try {
      const y = Float32Array.from(await run(m.x, m.n));
      parentPort.postMessage({ id: m.id, y }, [y.buffer]);
    } catch (e) {
      parentPort.postMessage({ id: m.id, error: message(e) });
    }
  });
  parentPort.postMessage({ ready: true });
})().catch((e) => parentPort.postMessage({ failed: message(e) }));
`;

type Reply =
  | { ready: true }
  | { failed: string }
  | { id: number; y: Float32Array }
  | { id: number; error: string };

/**
 * One replica of a model version: a worker thread holding its own onnxruntime session.
 * onnxruntime-node's `run` occupies the thread that calls it (measured: two sessions called
 * "concurrently" from one thread take twice as long and the event loop stalls meanwhile), so
 * a replica per thread is what lets a version use more than one core, and keeps a slow model
 * off the api's event loop.
 */
export class Replica {
  /** Batches sent and not yet answered. */
  inFlight = 0;
  /** Resolves once the session is loaded and warmed up; rejects when it cannot be. */
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (y: Float32Array) => void; reject: (e: Error) => void }
  >();
  private seq = 0;
  private exited = false;

  constructor(
    bytes: Uint8Array,
    private readonly width: number,
    warmup: number,
    /** Called once if the thread ends without being closed (a crash). */
    onCrash: (r: Replica) => void,
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { bytes, width, warmup, ortPath: require.resolve('onnxruntime-node') },
    });
    // A replica never keeps the process alive on its own; the runner closes it.
    this.worker.unref();
    let settle: { resolve: () => void; reject: (e: Error) => void };
    this.ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    this.ready.catch(() => undefined);
    this.worker.on('message', (m: Reply) => {
      if ('ready' in m) settle.resolve();
      else if ('failed' in m) settle.reject(new Error(m.failed));
      else {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        this.inFlight--;
        if ('y' in m) p?.resolve(m.y);
        else p?.reject(new Error(m.error));
      }
    });
    const end = (e: Error) => {
      if (this.exited) return;
      this.exited = true;
      settle.reject(e);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      onCrash(this);
    };
    this.worker.on('error', end);
    this.worker.on('exit', (code) => end(new Error(`replica thread exited (${code})`)));
  }

  /** Scores `n` rows laid out one after another in `x`; resolves to one output per row. */
  run(x: Float32Array, n: number): Promise<Float32Array> {
    if (this.exited) return Promise.reject(new Error('replica has stopped'));
    if (x.length !== n * this.width)
      return Promise.reject(new Error(`expected ${n}×${this.width} values, got ${x.length}`));
    const id = ++this.seq;
    this.inFlight++;
    return new Promise<Float32Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, x, n }, [x.buffer as ArrayBuffer]);
    });
  }

  /** Stops the thread once the batches already sent are answered. */
  async close(): Promise<void> {
    while (this.inFlight > 0 && !this.exited) await new Promise((r) => setTimeout(r, 5));
    this.exited = true;
    await this.worker.terminate();
  }
}
