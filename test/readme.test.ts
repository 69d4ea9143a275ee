/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  buildSchema,
  Kind,
  type OperationDefinitionNode,
  parse,
  validate,
  type DocumentNode,
} from 'graphql';
import { Role } from '../src/domain/auth/role';
import { GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The README's GraphQL examples, run as written: every ```graphql block, in order, against a
 * real server (Postgres, Redis, a gpu-runner process), so the docs cannot go stale. Every
 * operation is named, validates against the committed schema and executes without errors; a
 * subscription is validated only. A `$variable` is filled from what an earlier example
 * returned (CAPTURES); nothing else is supplied.
 */
const README = path.resolve(__dirname, '..', 'README.md');
const SCHEMA = buildSchema(
  fs.readFileSync(path.resolve(__dirname, '..', 'schema.graphql'), 'utf8'),
);

interface Example {
  name: string;
  line: number;
  source: string;
  document: DocumentNode;
  operation: OperationDefinitionNode;
}

/** Every ```graphql block of the README and its operations, in order; `problems` says what is wrong. */
function examples(markdown: string): { examples: Example[]; problems: string[] } {
  const out: Example[] = [];
  const problems: string[] = [];
  const fence = /^```graphql\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) {
    const line = markdown.slice(0, m.index).split('\n').length;
    const source = m[1];
    let document: DocumentNode;
    try {
      document = parse(source);
    } catch (e) {
      problems.push(`README.md:${line}: the block does not parse: ${String(e)}`);
      continue;
    }
    for (const d of document.definitions) {
      if (d.kind !== Kind.OPERATION_DEFINITION) continue;
      const name = d.name?.value ?? `anonymous at README.md:${line}`;
      if (!d.name) problems.push(`README.md:${line}: an anonymous operation; name every example`);
      out.push({ name, line, source, document, operation: d });
    }
  }
  return { examples: out, problems };
}

/** Ids later examples need: `$name` ← the value at this path of the named operation's result. */
const CAPTURES: Record<string, Record<string, string>> = {
  BuildDataset: { datasetId: 'buildDataset.id' },
  SubmitTrainingJobs: { runId: 'logistic.id', challengerRunId: 'gbdt.id' },
  RegisterModelVersion: { versionId: 'registerModelVersion.id' },
  RegisterChallenger: { challengerId: 'registerModelVersion.id' },
  CreateApiKey: { keyId: 'createApiKey.apiKey.id' },
};

type Data = Record<string, unknown>;
const at = (data: unknown, dotted: string): unknown =>
  dotted
    .split('.')
    .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Data)[k] : undefined), data);

/** The README says the runs end SUCCEEDED; the Runs example is asked again until they have. */
function runsDone(data: Data): boolean {
  const edges = at(data, 'runs.edges') as { node: { id: string; status: string } }[];
  const failed = edges.filter((e) => ['FAILED', 'CANCELLED'].includes(e.node.status));
  if (failed.length) throw new Error(`runs ended badly: ${JSON.stringify(edges)}`);
  return edges.length > 0 && edges.every((e) => e.node.status === 'SUCCEEDED');
}
const UNTIL: Record<string, (data: Data) => boolean> = { Runs: runsDone };

/** What the README's prose says an example gives. */
const CLAIMS: Record<string, (data: Data) => void> = {
  IngestFeatures: (d) =>
    expect(at(d, 'ingestFeatures.0')).toMatchObject({ received: 3, accepted: 2, quarantined: 1 }),
  BuildDataset: (d) => expect(d.buildDataset).toMatchObject({ status: 'READY', rowCount: 12 }),
  RollbackModel: (d) => expect(d.rollbackModel).toEqual({ version: 1, state: 'PRODUCTION' }),
  Predict: (d) =>
    expect(
      (d.predict as { entityKey: string; asOf: string | null }[]).map((p) => [p.entityKey, p.asOf]),
    ).toEqual([
      ['SFO', '2001-02-01T07:10:00.000Z'],
      ['ORD', '2001-01-29T11:00:00.000Z'],
      ['LAX', null],
    ]),
};

const { examples: all, problems } = examples(fs.readFileSync(README, 'utf8'));
let app: TestApp;
let gql: GraphQLTestClient;
let runner: RunnerProcess;
const captured: Record<string, unknown> = {};

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: {
      FEATURE_STREAM_CONSUMER: 'off',
      CANARY_INTERVAL_MS: '0',
      AUTOSCALE_INTERVAL_MS: '0',
      MONITOR_INTERVAL_MS: '0',
    },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  // The gpu-runner `npm start` starts beside the api.
  const key = await app.services.apiKeys.create(null, { name: 'runner', role: Role.RUNNER });
  runner = startRunner(app.url, key.token, {
    RUNNER_NAME: 'readme',
    GPU_RUNNER_GPUS: '',
    RUNNER_POLL_MS: '100',
  });
}, 60_000);

afterAll(async () => {
  runner?.child.kill('SIGTERM');
  await runner?.exited;
  await app?.stop();
});

describe('the README', () => {
  it('has named, unique operations that validate against the schema', () => {
    expect(problems).toEqual([]);
    expect(all.length).toBeGreaterThan(20);
    const names = all.map((e) => e.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    for (const e of all) {
      const errors = validate(SCHEMA, e.document).map((x) => x.message);
      expect({ example: e.name, line: e.line, errors }).toEqual({
        example: e.name,
        line: e.line,
        errors: [],
      });
    }
    // The variable and waiting maps name real examples (a renamed example fails here).
    for (const n of [...Object.keys(CAPTURES), ...Object.keys(UNTIL), ...Object.keys(CLAIMS)])
      expect(names).toContain(n);
  });

  it('shows each of the main operations at least once', () => {
    const fields = new Set<string>();
    for (const e of all)
      for (const s of e.operation.selectionSet.selections)
        if (s.kind === Kind.FIELD) fields.add(s.name.value);
    for (const f of [
      'createFeatureEntity',
      'createFeatureView',
      'ingestFeatures',
      'backfillFeatures',
      'onlineFeatures',
      'buildDataset',
      'submitTrainingJob',
      'run',
      'registerModelVersion',
      'transitionModelVersion',
      'rollbackModel',
      'lineage',
      'createDeployment',
      'predict',
      'createMonitor',
      'createApiKey',
    ])
      expect([...fields]).toContain(f);
  });
});

describe('the README examples, run in order', () => {
  it.each(all.map((e) => [e.name, e] as const))(
    '%s',
    async (_name, e) => {
      if (e.operation.operation === 'subscription') return; // validated above
      const variables: Record<string, unknown> = {};
      for (const v of e.operation.variableDefinitions ?? []) {
        const name = v.variable.name.value;
        if (!(name in captured))
          throw new Error(
            `README.md:${e.line}: ${e.name} needs $${name}, which no earlier example returned`,
          );
        variables[name] = captured[name];
      }
      const body = JSON.stringify({ query: e.source, operationName: e.name, variables });
      const deadline = Date.now() + 120_000;
      for (;;) {
        const r = await gql.raw(body);
        const json = r.json as { data?: Data; errors?: unknown[] };
        expect({ example: e.name, status: r.status, errors: json?.errors }).toEqual({
          example: e.name,
          status: 200,
          errors: undefined,
        });
        const data = json.data as Data;
        const until = UNTIL[e.name];
        if (!until || until(data)) {
          CLAIMS[e.name]?.(data);
          for (const [name, dotted] of Object.entries(CAPTURES[e.name] ?? {})) {
            captured[name] = at(data, dotted);
            expect({ [name]: typeof captured[name] }).toEqual({ [name]: 'string' });
          }
          return;
        }
        if (Date.now() > deadline)
          throw new Error(`${e.name} still not done: ${JSON.stringify(data)}\n${runner.log()}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    150_000,
  );
});
