import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { RunStatus, type TrainingRun } from '../src/domain/training/training-run';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import { SubmitTrainingJobDocument } from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Command trainers are sandboxed (docs/adr/0019), tested with a real api and a real runner
 * process: a hostile trainer dumps its environment, uid and limits, hunts for the runner's
 * key and the admin key (files, /proc of the runner) and prints whatever it finds, and
 * tries to write outside its directory. The run's log and stored files must hold no key,
 * the environment only the protocol's variables. The user switch needs a root runner: when
 * this test does not run as root, the uid and data directory checks are skipped and say so.
 */
const isRoot = process.getuid?.() === 0;
const notRoot = `skipped: this test runs as uid ${process.getuid?.()}, and only a root runner switches trainers to another user`;
const NOBODY = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim();

// A token of the platform's shape that the trainer prints: the log must not keep it.
const FAKE_TOKEN = `aek_0badc0de_${'x'.repeat(43)}`;

let app: TestApp;
let gql: GraphQLTestClient;
let runner: RunnerProcess;
let runnerKey: string;
let parentOfData: string;
let dataDir: string;
let datasetId: string;

/** What the probe trainer saw; written to stderr as one `REPORT {…}` line. */
interface Report {
  uid: number;
  gid: number;
  groups: number[];
  env: Record<string, string>;
  cwd: string;
  cwdStat: { mode: number; uid: number };
  limits: string;
  noNewPrivs: string;
  reads: Record<string, string>;
  writes: Record<string, string>;
  background: number;
}

const probe = (targets: { dataDir: string; outside: string }) => `
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const attempt = (f) => { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } };
const found = [];
const grab = (name, read) => attempt(() => { found.push(name + ': ' + read()); });
const data = ${JSON.stringify(targets.dataDir)};
const reads = {
  adminKey: grab('admin-key', () => fs.readFileSync(path.join(data, 'admin-key'), 'utf8')),
  runnerKey: grab('runner-key', () => fs.readFileSync(path.join(data, 'runner-key'), 'utf8')),
  dataDir: grab('data dir', () => fs.readdirSync(data).join(',')),
  runnerEnviron: grab('runner environ', () => fs.readFileSync('/proc/' + process.ppid + '/environ', 'latin1')),
  runnerCmdline: grab('runner cmdline', () => fs.readFileSync('/proc/' + process.ppid + '/cmdline', 'latin1')),
};
const writes = {
  dataDir: attempt(() => fs.writeFileSync(path.join(data, 'planted'), 'x')),
  outside: attempt(() => fs.writeFileSync(${JSON.stringify(targets.outside)}, 'x')),
  besideWorkspace: attempt(() => fs.writeFileSync(path.join(process.cwd(), '..', 'planted'), 'x')),
  home: attempt(() => fs.writeFileSync(path.join(process.env.HOME, 'note'), 'x')),
  tmpdir: attempt(() => fs.writeFileSync(path.join(process.env.TMPDIR, 'note'), 'x')),
};
// Whatever it found goes to the log, raw; so does a token of the platform's shape.
for (const f of found) console.error('FOUND ' + f);
for (const [k, v] of Object.entries(process.env)) console.error('ENV ' + k + '=' + v);
console.error('token ${FAKE_TOKEN} in a log line');
// A process left behind must not outlive the trainer.
const bg = spawn('sleep', ['600'], { stdio: 'ignore' });
bg.unref();
const st = fs.statSync(process.cwd());
const report = {
  uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), env: process.env,
  cwd: process.cwd(), cwdStat: { mode: st.mode & 0o777, uid: st.uid },
  limits: fs.readFileSync('/proc/self/limits', 'utf8'),
  noNewPrivs: (/NoNewPrivs:\\s*(\\d)/.exec(fs.readFileSync('/proc/self/status', 'utf8')) || [])[1],
  reads, writes, background: bg.pid,
};
console.error('REPORT ' + JSON.stringify(report));
const file = path.join(process.env.AETHER_CHECKPOINT_DIR, 'epoch-1.json');
fs.writeFileSync(file, JSON.stringify({ found, env: process.env }));
console.log(JSON.stringify({ type: 'epoch', epoch: 1, epochs: 1, metrics: { val_auc: 0.5 } }));
console.log(JSON.stringify({ type: 'checkpoint', epoch: 1, path: file }));
`;

beforeAll(async () => {
  // The api is given a data directory that exists with a wide mode: it must narrow it.
  parentOfData = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-sandbox-'));
  fs.chmodSync(parentOfData, 0o755);
  dataDir = path.join(parentOfData, '.data');
  fs.mkdirSync(dataDir, { mode: 0o755 });
  fs.chmodSync(dataDir, 0o755);
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', DATA_DIR: dataDir },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  runnerKey = (await app.services.apiKeys.create(null, { name: 'sandbox', role: Role.RUNNER }))
    .token;
  // As `npm start` keeps it: a key file in the data directory.
  fs.writeFileSync(path.join(dataDir, 'runner-key'), runnerKey + '\n', { mode: 0o600 });
  runner = startRunner(app.url, '', {
    AETHER_RUNNER_KEY_FILE: path.join(dataDir, 'runner-key'),
    RUNNER_NAME: 'sandboxed',
    GPU_RUNNER_GPUS: '0',
    RUNNER_POLL_MS: '100',
    RUNNER_REPORT_MS: '100',
    // The runner's own environment, none of which a trainer may see.
    DATABASE_URL: 'postgres://admin:hunter2@db/aether',
    AWS_SECRET_ACCESS_KEY: 'runner-only-secret',
    RUNNER_TRAINER_NOFILE: '256',
    RUNNER_TRAINER_NPROC: '2048',
    RUNNER_TRAINER_FSIZE_MB: '8',
    RUNNER_TRAINER_MEMORY_MB: '4096',
    RUNNER_TRAINER_CPU_SECONDS: '600',
  });

  const s = app.services;
  await s.featureRegistry.createEntity({ name: 'sb', joinKeys: ['sb_id'] });
  const { version } = await s.featureRegistry.createView({
    name: 'sbv',
    entity: 'sb',
    source: 'sbv_src',
    ttlSeconds: 86_400,
    allowedLatenessSeconds: 86_400,
    features: [
      {
        name: 'a',
        type: FeatureType.FLOAT,
        source: 'a',
        transform: { kind: 'IDENTITY' as const },
        aggregation: null,
        validation: {},
      },
    ],
  });
  const T0 = Date.now() - 3_600_000;
  const records = [];
  const spine = [];
  for (let i = 0; i < 50; i++) {
    records.push({ entityKey: `s${i}`, eventId: 'e', eventTs: T0 + i, fields: { a: i } });
    spine.push({ entityKey: `s${i}`, ts: T0 + 1_000 + i, label: i % 2 });
  }
  await s.ingestion.ingest([version], records, 'test');
  const { snapshot, done } = await s.datasets.build({
    name: 'sb',
    featureRefs: ['sbv@1:*'],
    spine,
  });
  await done;
  datasetId = toGlobalId('DatasetSnapshot', snapshot.id);
});

afterAll(async () => {
  runner?.child.kill('SIGKILL');
  await runner?.exited;
  await app?.stop();
  fs.rmSync(parentOfData, { recursive: true, force: true });
});

async function runCommand(name: string, script: string): Promise<TrainingRun> {
  const r = await gql.ok(SubmitTrainingJobDocument, {
    input: {
      experiment: 'sandbox',
      datasetId,
      command: { name, argv: [process.execPath, '-e', script] },
      gpuCount: 1,
      maxRetries: 0,
    } as never,
  });
  const id = localIdOf(r.submitTrainingJob.id, 'Run');
  try {
    return await until(async () => {
      const x = await app.services.training.get(id);
      return [RunStatus.SUCCEEDED, RunStatus.FAILED].includes(x.status) ? x : undefined;
    }, 60_000);
  } catch (e) {
    throw new Error(`run ${name} did not finish:\n${runner.log().slice(-3000)}`, { cause: e });
  }
}

/** Every stored artifact (dataset, checkpoints, models), as text. */
function storedFiles(): string[] {
  const root = path.join(dataDir, 'artifacts');
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true }) as string[])
    .map((f) => path.join(root, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => fs.readFileSync(f, 'latin1'));
}

/** Alive and not a zombie waiting to be reaped by init. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// The keys, and values from the runner's environment (the trainer finds them only without
// the user switch, and only the keys are then scrubbed from its log).
const secretsOf = () => [runnerKey, app.adminToken, 'hunter2', 'runner-only-secret'];

describe('a hostile command trainer', () => {
  let run: TrainingRun;
  let report: Report;

  beforeAll(async () => {
    run = await runCommand(
      'probe',
      probe({ dataDir, outside: path.join(parentOfData, 'planted') }),
    );
    const line = (run.logTail ?? '').split('\n').find((l) => l.startsWith('REPORT '));
    if (!line) throw new Error(`no report in the log:\n${run.logTail}\n${runner.log()}`);
    report = JSON.parse(line.slice('REPORT '.length)) as Report;
  }, 90_000);

  it('sees only the protocol environment, in a directory of its own', async () => {
    expect(run.status).toBe(RunStatus.SUCCEEDED);
    expect(Object.keys(report.env).sort()).toEqual([
      'AETHER_CHECKPOINT_DIR',
      'AETHER_DATASET_PATH',
      'AETHER_HYPERPARAMETERS',
      'AETHER_OUTPUT_DIR',
      'AETHER_RUN_ID',
      'AETHER_TRAINER',
      'CUDA_VISIBLE_DEVICES',
      'HOME',
      'LANG',
      'PATH',
      'TMPDIR',
    ]);
    const { env, cwd } = report;
    expect(env.CUDA_VISIBLE_DEVICES).toBe('0');
    expect(env.PATH).toBe('/usr/local/bin:/usr/bin:/bin');
    for (const v of ['HOME', 'TMPDIR', 'AETHER_OUTPUT_DIR', 'AETHER_CHECKPOINT_DIR'])
      expect(env[v].startsWith(cwd + '/')).toBe(true);
    expect(report.cwdStat.mode).toBe(0o700);
    expect(report.writes).toMatchObject({ home: 'ok', tmpdir: 'ok' });
    // The process it left behind dies with it; the runner removes its directory once it
    // has reported the run.
    await until(async () => (running(report.background) ? undefined : true));
    await until(async () => (fs.existsSync(path.dirname(cwd)) ? undefined : true));
  });

  it('runs under the configured limits, unable to gain privileges', () => {
    const limit = (name: string) =>
      new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(report.limits)?.slice(1, 3);
    expect(limit('Max open files')).toEqual(['256', '256']);
    expect(limit('Max processes')).toEqual(['2048', '2048']);
    expect(limit('Max file size')).toEqual([String(8 * 2 ** 20), String(8 * 2 ** 20)]);
    expect(limit('Max data size')).toEqual([String(4096 * 2 ** 20), String(4096 * 2 ** 20)]);
    expect(limit('Max cpu time')).toEqual(['600', '605']);
    expect(limit('Max core file size')).toEqual(['0', '0']);
    expect(report.noNewPrivs).toBe('1');
  });

  // Without the user switch the trainer can find the runner's key (see the skipped tests);
  // the log still must not show it.
  it('leaves no key in the log', () => {
    const log = run.logTail ?? '';
    expect(log).toContain('ENV AETHER_RUN_ID=');
    expect(log).toContain('token aek_[redacted] in a log line');
    expect(log).not.toContain(FAKE_TOKEN);
    // The command line it read is NUL-separated: stored with the NULs replaced.
    expect(log).toMatch(/FOUND runner cmdline: \S+\uFFFD\S+main\.js\uFFFD/);
    for (const key of [runnerKey, app.adminToken]) expect(log).not.toContain(key);
  });

  (isRoot ? it : it.skip)(
    `runs as an unprivileged user without its groups${isRoot ? '' : ` (${notRoot})`}`,
    () => {
      expect(report.uid).not.toBe(0);
      expect(String(report.uid)).toBe(NOBODY);
      expect(report.groups).toEqual([report.gid]);
      expect(report.cwdStat.uid).toBe(report.uid);
    },
  );

  (isRoot ? it : it.skip)(
    `cannot read the api's data directory or the runner's environment, nor write outside its own directory${isRoot ? '' : ` (${notRoot})`}`,
    () => {
      expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
      expect(report.reads).toEqual({
        adminKey: 'EACCES',
        runnerKey: 'EACCES',
        dataDir: 'EACCES',
        runnerEnviron: 'EACCES',
        // Any user may read a command line: the runner keeps no secret there.
        runnerCmdline: 'ok',
      });
      expect(report.writes).toMatchObject({
        dataDir: 'EACCES',
        outside: 'EACCES',
        besideWorkspace: 'EACCES',
      });
      // Nothing found, so nothing in its log or the files it wrote either.
      expect(run.logTail).not.toMatch(/FOUND (admin-key|runner-key|data dir|runner environ)/);
      const files = storedFiles();
      expect(files.length).toBeGreaterThanOrEqual(2); // the dataset and the checkpoint
      for (const secret of secretsOf()) {
        expect(run.logTail).not.toContain(secret);
        for (const f of files) expect(f).not.toContain(secret);
      }
    },
  );
});

if (!isRoot)
  console.log(`trainer-sandbox.test.ts: the uid and data directory checks are ${notRoot}`);

it("refuses to upload a file that is not the trainer's own, even through a link", async () => {
  const adminKeyFile = path.join(dataDir, 'admin-key');
  const direct = await runCommand(
    'exfiltrate-path',
    `console.log(JSON.stringify({ type: 'model', path: ${JSON.stringify(adminKeyFile)}, format: 'onnx' }));`,
  );
  expect(direct.status).toBe(RunStatus.FAILED);
  expect(direct.error).toBe(`the trainer reported ${adminKeyFile}, which is outside its directory`);
  const linked = await runCommand(
    'exfiltrate-link',
    `const fs = require('fs'), path = require('path');
     const link = path.join(process.env.AETHER_OUTPUT_DIR, 'model.onnx');
     fs.symlinkSync(${JSON.stringify(adminKeyFile)}, link);
     console.log(JSON.stringify({ type: 'model', path: link, format: 'onnx' }));`,
  );
  expect(linked.status).toBe(RunStatus.FAILED);
  expect(linked.error).toMatch(/which cannot be opened \(ELOOP\)$/);
  for (const r of [direct, linked]) expect(r.model).toBeNull();
  // Nothing was stored as the model: no artifact is the admin key file.
  expect(storedFiles()).not.toContain(fs.readFileSync(adminKeyFile, 'latin1'));
}, 120_000);
