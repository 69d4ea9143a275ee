import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Shared helpers: figures file, machine description, percentiles, child-process load clients. */
export function machine(): string {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * A fixed CPU workload timed now (median of five, in ms): sorting a million pseudo-random
 * doubles and hashing 8 MiB. Every result carries it, so figures from days when the machine
 * ran 2-3x slower can be told from a change in the code.
 */
export function calibrationMs(): number {
  const times: number[] = [];
  const block = Buffer.alloc(8 * 2 ** 20, 7);
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    const xs = new Float64Array(1_000_000);
    let x = 12345;
    for (let i = 0; i < xs.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      xs[i] = x / 2 ** 32;
    }
    xs.sort();
    createHash('sha256').update(block).digest();
    times.push(performance.now() - t0);
  }
  return round(median(times), 1);
}

export function writeResult(name: string, figures: Record<string, number>): string {
  const dir = path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  figures = { ...figures, calibration_ms: calibrationMs() };
  fs.writeFileSync(
    file,
    JSON.stringify({ name, at: new Date().toISOString(), machine: machine(), figures }, null, 2) +
      '\n',
  );
  console.table(figures);
  console.log(`wrote ${file}`);
  return file;
}

/** Scale factor for quick runs: BENCH_SCALE=0.1 runs a tenth of the default size. */
export function scale(): number {
  const s = Number(process.env.BENCH_SCALE ?? 1);
  return Number.isFinite(s) && s > 0 ? s : 1;
}

export interface LoadResult {
  p50: number;
  p99: number;
  rps: number;
  n: number;
  errors: number;
}

export type LoadSpec =
  | {
      mode: 'http';
      url: string;
      /** Several servers behind a round-robin client: each request goes to the next (then `url` is unused). */
      urls?: string[];
      /** POST unless given. */
      method?: 'GET' | 'POST';
      headers: Record<string, string>;
      body: string;
      concurrency: number;
      seconds: number;
      warmupSeconds: number;
      /**
       * Stop early once this file exists (`seconds` is then the longest it runs), and
       * record the requests still in flight at the stop: a stalled request counts.
       */
      stopFile?: string;
    }
  | {
      mode: 'redis';
      url: string;
      key: string;
      concurrency: number;
      seconds: number;
      warmupSeconds: number;
    };

/**
 * Runs the load client in a separate process, so client work never shares the server's event
 * loop. `niceness` (0-19) lowers the client's CPU priority: on a 2-core machine a client
 * standing in for remote traffic then takes what the server and the measuring client leave.
 */
export function runLoad(spec: LoadSpec, niceness = 0): Promise<LoadResult> {
  // Large bodies travel in a file: the command line has a size limit (E2BIG).
  let arg = JSON.stringify(spec);
  if (arg.length > 64 * 1024) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aether-load-')), 'spec.json');
    fs.writeFileSync(file, arg);
    arg = `@${file}`;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'load-client.js'), arg], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (niceness && child.pid) os.setPriority(child.pid, niceness);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as LoadResult)
        : reject(new Error(`load client exited ${code}`)),
    );
  });
}

/** GETs of `<base>/healthz`, the floor of the HTTP path, from the load client. */
export function healthzLoad(
  base: string,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  return runLoad({
    mode: 'http',
    method: 'GET',
    url: `${base}/healthz`,
    headers: {},
    body: '',
    concurrency,
    seconds,
    warmupSeconds: 1,
  });
}
