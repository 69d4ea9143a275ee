import {
  CreateApiKeyDocument,
  RegisterRunnerDocument,
  RunnerEventsDocument,
  RunnerHeartbeatDocument,
  RunnersDocument,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { startRunner as spawnRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

let app: TestApp;
let admin: GraphQLTestClient;

beforeAll(async () => {
  app = await startTestApp(__filename);
  admin = new GraphQLTestClient(app.url, app.adminToken);
});
afterAll(() => app.stop());

async function runnerKey(name: string): Promise<string> {
  return (await admin.ok(CreateApiKeyDocument, { input: { name, role: 'RUNNER' } })).createApiKey
    .token;
}

const startRunner = (key: string, env: Record<string, string>) => spawnRunner(app.url, key, env);

it('a gpu-runner process registers its declared pool, heartbeats, and deregisters on SIGTERM', async () => {
  const ws = admin.ws();
  const events = collect(ws, RunnerEventsDocument);
  await new Promise((r) => setTimeout(r, 300));
  const runner = startRunner(await runnerKey('runner-a'), {
    GPU_RUNNER_GPUS: '0,1,2,3',
    RUNNER_NAME: 'runner-a',
    RUNNER_HEARTBEAT_MS: '200',
  });

  const found = await until(async () => {
    const r = await admin.ok(RunnersDocument, { first: 100 });
    return r.runners.edges.map((e) => e.node).find((n) => n.name === 'runner-a');
  });
  expect(found.status).toBe('ONLINE');
  expect(found.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);

  runner.child.kill('SIGTERM');
  expect(await runner.exited).toBe(0);
  const stopped = await admin.ok(RunnersDocument, { first: 100 });
  expect(stopped.runners.edges.find((e) => e.node.id === found.id)?.node.status).toBe('STOPPED');

  const got = await events.next(2);
  expect(got.map((e) => [e.runnerEvents.kind, e.runnerEvents.runnerId])).toEqual([
    ['REGISTERED', found.id],
    ['STOPPED', found.id],
  ]);
  events.dispose();
  await ws.dispose();
});

it('a runner key cannot heartbeat for another key’s runner', async () => {
  const mine = admin.withToken(await runnerKey('owner'));
  const other = admin.withToken(await runnerKey('intruder'));
  const r = await mine.ok(RegisterRunnerDocument, {
    input: { name: 'owned', hostname: 'h', gpus: [{ index: 0, name: 'declared', memoryMb: null }] },
  });
  const denied = await other.request(RunnerHeartbeatDocument, { id: r.registerRunner.id });
  expect(denied.errors?.[0].extensions).toMatchObject({
    code: 'FORBIDDEN',
    reason: 'NOT_YOUR_RUNNER',
  });
  expect(
    (await mine.ok(RunnerHeartbeatDocument, { id: r.registerRunner.id })).runnerHeartbeat.status,
  ).toBe('ONLINE');
});

it('rejects an invalid GPU inventory with BAD_USER_INPUT', async () => {
  const key = admin.withToken(await runnerKey('bad-inventory'));
  const r = await key.request(RegisterRunnerDocument, {
    input: {
      name: 'dup',
      hostname: 'h',
      gpus: [
        { index: 0, name: 'a', memoryMb: null },
        { index: 0, name: 'b', memoryMb: null },
      ],
    },
  });
  expect(r.errors?.[0].extensions).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'INVALID_RUNNER',
  });
});

it('a runner with a malformed GPU_RUNNER_GPUS exits with a clear message', async () => {
  const runner = startRunner(await runnerKey('bad-env'), { GPU_RUNNER_GPUS: '0,zero' });
  expect(await runner.exited).toBe(1);
  expect(runner.log()).toContain('GPU_RUNNER_GPUS must be a comma-separated list');
});
