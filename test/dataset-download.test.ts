import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  Field,
  Float64,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { writeParquet } from '../src/infra/datasets/parquet';
import { BuildDatasetDocument } from './generated/graphql';
import { readSnapshot } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Training data anyone can read: a snapshot downloaded over HTTP as Parquet and Arrow, read by
 * the README's three lines of Python (pandas + pyarrow), by DuckDB and by hyparquet, each
 * giving the rows the snapshot holds. The spine comes from a Parquet file in the artifact store.
 */
const run = promisify(execFile);
const T0 = Date.parse('2026-08-01T00:00:00Z');
const H = 3_600_000;
let app: TestApp;
let gql: GraphQLTestClient;
let viewerKey: string;
let base: string;
let dataset: {
  id: string;
  artifactKey: string;
  contentHash: string;
  parquet: string;
  arrow: string;
};
let expected: Record<string, unknown>[];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-download-'));

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  base = app.url.replace(/\/graphql$/, '');
  viewerKey = (await app.services.apiKeys.create(null, { name: 'analyst', role: Role.VIEWER }))
    .token;
  const s = app.services;
  await s.featureRegistry.createEntity({ name: 'store', joinKeys: ['store_id'] });
  const { version } = await s.featureRegistry.createView({
    name: 'footfall',
    entity: 'store',
    source: 'footfall_src',
    ttlSeconds: 7 * 86_400,
    allowedLatenessSeconds: 7 * 86_400,
    features: ['visitors', 'temperature'].map((name) => ({
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
    Array.from({ length: 40 }, (_, i) => ({
      entityKey: `st${i % 4}`,
      eventId: `v${i}`,
      eventTs: T0 + i * H,
      knownAt: T0 + i * H,
      fields: { visitors: i * 3, temperature: i % 5 === 0 ? null : 20 + i / 4 },
    })),
    'test',
  );
  // The spine as a Parquet file in the artifact store, not in the request.
  const n = 30;
  const spine = new Table(
    new Schema([
      new Field('entity_key', new Utf8()),
      new Field('ts', new TimestampMillisecond()),
      new Field('label', new Float64()),
    ]),
    {
      entity_key: vectorFromArray(
        Array.from({ length: n }, (_, i) => `st${i % 5}`),
        new Utf8(),
      ),
      ts: vectorFromArray(
        Array.from({ length: n }, (_, i) => T0 + i * 1.5 * H),
        new TimestampMillisecond(),
      ),
      label: vectorFromArray(
        Array.from({ length: n }, (_, i) => i % 2),
        new Float64(),
      ),
    },
  );
  await s.artifacts.put('spines/footfall.parquet', await writeParquet(spine));
  const built = await gql.ok(BuildDatasetDocument, {
    input: {
      name: 'footfall-train',
      featureRefs: ['footfall@1:*'],
      spineFile: { artifactKey: 'spines/footfall.parquet' },
    },
    wait: true,
  });
  const d = built.buildDataset;
  expect(d.status).toBe('READY');
  dataset = {
    id: d.id,
    artifactKey: d.artifactKey as string,
    contentHash: d.contentHash as string,
    parquet: d.download?.parquet as string,
    arrow: d.download?.arrow as string,
  };
  expected = (await readSnapshot(s.artifacts, dataset.artifactKey)).map((r) => ({
    ...r,
    ts: Number(r.ts),
  }));
});
afterAll(async () => {
  await app.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const get = (p: string, key: string | null = viewerKey) =>
  fetch(`${base}${p}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });

async function download(p: string): Promise<{ res: Response; bytes: Buffer }> {
  const res = await get(p);
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('GET /datasets/<id>/snapshot.*', () => {
  it('names both downloads in the graph', () => {
    expect(dataset.parquet).toBe(`/datasets/${dataset.id}/snapshot.parquet`);
    expect(dataset.arrow).toBe(`/datasets/${dataset.id}/snapshot.arrow`);
    expect(expected).toHaveLength(30);
    expect(Object.keys(expected[0])).toEqual([
      'entity_key',
      'ts',
      'label',
      'footfall@1:visitors',
      'footfall@1:temperature',
    ]);
  });

  it('streams the Arrow file itself: its SHA-256 is the content hash', async () => {
    const { res, bytes } = await download(dataset.arrow);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.arrow.file');
    expect(res.headers.get('x-aether-content-hash')).toBe(dataset.contentHash);
    expect(res.headers.get('x-content-sha256')).toBe(dataset.contentHash);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(dataset.contentHash);
    expect(Number(res.headers.get('content-length'))).toBe(bytes.length);
  });

  it('serves Parquet with its own SHA-256 and the same bytes on every download', async () => {
    const first = await download(dataset.parquet);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('x-aether-content-hash')).toBe(dataset.contentHash);
    const sha = createHash('sha256').update(first.bytes).digest('hex');
    expect(first.res.headers.get('x-content-sha256')).toBe(sha);
    expect(first.bytes.subarray(0, 4).toString()).toBe('PAR1');
    const again = await download(dataset.parquet);
    expect(createHash('sha256').update(again.bytes).digest('hex')).toBe(sha);
    fs.writeFileSync(path.join(tmp, 'snapshot.parquet'), first.bytes);
  });

  it('refuses no key, a runner key, an unknown id and a wrong path with coded errors', async () => {
    expect((await get(dataset.parquet, null)).status).toBe(401);
    const runner = (await app.services.apiKeys.create(null, { name: 'r', role: Role.RUNNER }))
      .token;
    const forbidden = await get(dataset.parquet, runner);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({
      errors: [{ extensions: { code: 'FORBIDDEN', reason: 'INSUFFICIENT_ROLE' } }],
    });
    const unknown = await get(
      `/datasets/${Buffer.from('DatasetSnapshot:00000000-0000-0000-0000-000000000000').toString('base64url')}/snapshot.parquet`,
    );
    expect(unknown.status).toBe(404);
    expect((await get(`/datasets/${dataset.id}/snapshot.csv`)).status).toBe(404);
    expect((await get(`/datasets/nonsense/snapshot.arrow`)).status).toBe(400);
  });
});

describe('readers of the downloaded Parquet', () => {
  it('pandas: the README’s three lines, run by python3', async () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const block = /<!-- snapshot-to-pandas[^>]*-->\s*```python\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block?.trim().split('\n')).toHaveLength(3);
    const script = [
      'import json, os',
      'AETHER, KEY, DATASET = os.environ["AETHER"], os.environ["KEY"], os.environ["DATASET"]',
      block as string,
      'df["ts"] = df["ts"].astype("int64") // 10**6 if str(df["ts"].dtype).endswith("[ns]") else df["ts"].astype("int64")',
      'print(json.dumps({"dtypes": {c: str(t) for c, t in df.dtypes.items()}, "rows": json.loads(df.to_json(orient="records"))}))',
    ].join('\n');
    const { stdout } = await run('python3', ['-c', script], {
      env: { ...process.env, AETHER: base, KEY: viewerKey, DATASET: dataset.id },
    });
    const out = JSON.parse(stdout) as { dtypes: Record<string, string>; rows: unknown[] };
    expect(out.dtypes['footfall@1:visitors']).toBe('float64');
    expect(out.dtypes.ts).toBe('int64');
    expect(out.rows).toEqual(expected);
  });

  it('DuckDB', async () => {
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    const res = await duck.runAndReadAll(
      `SELECT entity_key, epoch_ms(ts) AS ts, label, "footfall@1:visitors", "footfall@1:temperature"
         FROM read_parquet('${path.join(tmp, 'snapshot.parquet')}')`,
    );
    const rows = res.getRowObjectsJS().map((r) => ({ ...r, ts: Number(r.ts) }));
    duck.closeSync();
    expect(rows).toEqual(expected);
  });

  it('hyparquet', async () => {
    const { parquetReadObjects } = await import('hyparquet');
    const bytes = fs.readFileSync(path.join(tmp, 'snapshot.parquet'));
    const rows = await parquetReadObjects({
      file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
    });
    expect(
      rows.map((r) => ({ ...r, ts: r.ts instanceof Date ? r.ts.getTime() : Number(r.ts) })),
    ).toEqual(expected);
  });
});
