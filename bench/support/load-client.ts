import fs from 'node:fs';
import http from 'node:http';
import Redis from 'ioredis';
import { type LoadResult, type LoadSpec, percentile } from './bench';

/**
 * Closed-loop load: `concurrency` workers each send a request as soon as the previous one
 * answered, for `seconds` after a warm-up. Prints one JSON LoadResult on stdout.
 */
async function main(): Promise<void> {
  const arg = process.argv[2];
  const spec = JSON.parse(
    arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg,
  ) as LoadSpec;
  const send = spec.mode === 'http' ? httpSender(spec) : await redisSender(spec);
  const latencies: number[] = [];
  let errors = 0;
  let recording = false;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      const ok = await send().catch(() => false);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (recording) {
        if (ok) latencies.push(ms);
        else errors++;
      }
    }
  };
  const workers = Array.from({ length: spec.concurrency }, worker);
  await new Promise((r) => setTimeout(r, spec.warmupSeconds * 1000));
  recording = true;
  const start = process.hrtime.bigint();
  const stopFile = spec.mode === 'http' ? spec.stopFile : undefined;
  if (stopFile) {
    const until = Date.now() + spec.seconds * 1000;
    while (Date.now() < until && !fs.existsSync(stopFile))
      await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all(workers);
    recording = false;
  } else {
    await new Promise((r) => setTimeout(r, spec.seconds * 1000));
    recording = false;
    stop = true;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  const result: LoadResult = {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rps: latencies.length / elapsed,
    n: latencies.length,
    errors,
  };
  process.stderr.write(
    JSON.stringify({
      p75: percentile(latencies, 75),
      p95: percentile(latencies, 95),
      p98: percentile(latencies, 98),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
    }) + '\n',
  );
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
}

function httpSender(spec: Extract<LoadSpec, { mode: 'http' }>): () => Promise<boolean> {
  const urls = (spec.urls?.length ? spec.urls : [spec.url]).map((u) => new URL(u));
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
  const body = Buffer.from(spec.body);
  let next = 0;
  return () =>
    new Promise((resolve, reject) => {
      const url = urls[next++ % urls.length];
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: spec.method ?? 'POST',
          agent,
          headers:
            spec.method === 'GET'
              ? spec.headers
              : {
                  ...spec.headers,
                  'content-type': 'application/json',
                  'content-length': body.length,
                },
        },
        (res) => {
          let size = 0;
          res.on('data', (c: Buffer) => (size += c.length));
          res.on('end', () => resolve(res.statusCode === 200 && size > 0));
        },
      );
      req.on('error', reject);
      req.end(spec.method === 'GET' ? undefined : body);
    });
}

async function redisSender(
  spec: Extract<LoadSpec, { mode: 'redis' }>,
): Promise<() => Promise<boolean>> {
  const redis = new Redis(spec.url);
  await redis.ping();
  // The online store's read of one key: every packed event of the entity's hash.
  return async () => (await redis.hvalsBuffer(spec.key)).length > 0;
}

void main();
