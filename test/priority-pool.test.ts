import { Pool } from 'pg';
import { prioritizeRequests } from '../src/infra/db/priority-pool';
import { inRequest } from '../src/infra/db/request-scope';
import { resolveServices, type ResolvedServices } from './support/services';

/**
 * A request waits for the statements already running, never for background statements
 * queued before it (docs/adr/0020): on a one-connection pool, as the embedded PGlite's is.
 */
let services: ResolvedServices;
let pool: Pool;

beforeAll(async () => {
  services = await resolveServices();
  pool = new Pool({ connectionString: services.databaseUrl, max: 1 });
  prioritizeRequests(pool, { connections: 1, backgroundMaxWaitMs: 1_000 });
});
afterAll(async () => {
  await pool.end();
  await services.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('serves a waiting request before background statements that queued first', async () => {
  const order: string[] = [];
  const run = (name: string, sql: string) =>
    pool.query(sql).then(() => {
      order.push(name);
    });
  const running = run('running', 'SELECT pg_sleep(0.3)');
  const queued = [run('bg1', 'SELECT pg_sleep(0.05)'), run('bg2', 'SELECT pg_sleep(0.05)')];
  await sleep(50);
  const request = inRequest(() => run('request', 'SELECT 1'));
  await Promise.all([running, ...queued, request]);
  expect(order).toEqual(['running', 'request', 'bg1', 'bg2']);
});

it('treats work a request leaves running as background once the request is answered', async () => {
  const order: string[] = [];
  let leftRunning: Promise<void> = Promise.resolve();
  await inRequest(async () => {
    leftRunning = (async () => {
      await sleep(20);
      await pool.query('SELECT pg_sleep(0.05)');
      order.push('left running');
    })();
  });
  const holder = pool.query('SELECT pg_sleep(0.2)');
  await sleep(40); // the left-running statement is queued now, behind the holder
  const request = inRequest(async () => {
    await pool.query('SELECT 1');
    order.push('request');
  });
  await Promise.all([holder, leftRunning, request]);
  expect(order).toEqual(['request', 'left running']);
});

it('lets a background statement go first once it has waited backgroundMaxWaitMs', async () => {
  const impatient = new Pool({ connectionString: services.databaseUrl, max: 1 });
  prioritizeRequests(impatient, { connections: 1, backgroundMaxWaitMs: 100 });
  try {
    const order: string[] = [];
    const run = (name: string, sql: string) =>
      impatient.query(sql).then(() => {
        order.push(name);
      });
    const holder = run('holder', 'SELECT pg_sleep(0.25)');
    await sleep(20);
    const background = run('background', 'SELECT 1');
    await sleep(20);
    const request = inRequest(() => run('request', 'SELECT 1'));
    await Promise.all([holder, background, request]);
    // The background statement had waited over 100 ms when the holder let go.
    expect(order).toEqual(['holder', 'background', 'request']);
  } finally {
    await impatient.end();
  }
});

it('fails a checkout that waited past acquireTimeoutMs as the pool would, and loses no permit', async () => {
  const bounded = new Pool({ connectionString: services.databaseUrl, max: 1 });
  prioritizeRequests(bounded, { connections: 1, backgroundMaxWaitMs: 50, acquireTimeoutMs: 100 });
  try {
    const holder = bounded.query('SELECT pg_sleep(0.4)');
    await sleep(20);
    const started = Date.now();
    await expect(inRequest(() => bounded.query('SELECT 1'))).rejects.toThrow(
      'timeout exceeded when trying to connect',
    );
    expect(Date.now() - started).toBeLessThan(350);
    await expect(bounded.query('SELECT 1')).rejects.toThrow('timeout exceeded');
    await holder;
    for (let i = 0; i < 5; i++) await bounded.query('SELECT 1');
  } finally {
    await bounded.end();
  }
});

it('keeps both forms of connect working, and a failed statement gives its connection back', async () => {
  await expect(pool.query('SELECT nope')).rejects.toThrow(/nope/);
  const client = await pool.connect();
  try {
    expect((await client.query('SELECT 2 AS n')).rows[0].n).toBe(2);
  } finally {
    client.release();
  }
  const viaCallback = await new Promise<number>((resolve, reject) =>
    pool.connect((err, c, done) => {
      if (err || !c) return reject(err);
      c.query('SELECT 3 AS n').then(
        (r) => {
          done();
          resolve(r.rows[0].n as number);
        },
        (e: Error) => {
          done(e);
          reject(e);
        },
      );
    }),
  );
  expect(viaCallback).toBe(3);
  // Every permit came back: ten statements in a row on the one connection.
  for (let i = 0; i < 10; i++) await pool.query('SELECT 1');
});
