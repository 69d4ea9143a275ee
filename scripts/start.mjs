#!/usr/bin/env node
// `npm start`: install dependencies if missing, build, start the api on its embedded
// default, then one local gpu-runner. Ctrl-C stops both and everything they started.
// Plain JavaScript on purpose: it runs before any dependency is installed.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NPM_INSTALL_ENV, ensureConsoleBuilt } from './console-build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.resolve(root, process.env.DATA_DIR ?? '.data');
const port = Number(process.env.PORT ?? 4000);
const apiUrl = `http://127.0.0.1:${port}`;
const log = (msg) => process.stderr.write(`[start] ${msg}\n`);

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    log(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

function dependenciesMissing() {
  const marker = path.join(root, 'node_modules', '.package-lock.json');
  if (!fs.existsSync(marker)) return true;
  const lock = path.join(root, 'package-lock.json');
  return fs.existsSync(lock) && fs.statSync(lock).mtimeMs > fs.statSync(marker).mtimeMs;
}

if (dependenciesMissing()) {
  // `npm ci`: exactly the lock, never rewriting it (docs/adr/0001).
  log('installing dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund'], NPM_INSTALL_ENV);
}
log('building');
run(process.execPath, [
  path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '-p',
  'tsconfig.build.json',
]);

try {
  ensureConsoleBuilt();
} catch (e) {
  log(e.message);
  process.exit(1);
}

/** Children run in their own process groups so a Ctrl-C reaches only us and we stop them in order. */
const children = new Map();
let stopping = false;

function start(name, args, env) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, ...env },
  });
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal)),
  );
  children.set(name, { child, exited });
  exited.then((how) => {
    children.delete(name);
    if (!stopping) {
      log(`${name} exited (${how}); stopping`);
      void shutdown(typeof how === 'number' && how !== 0 ? how : 1);
    }
  });
}

async function stopChild(name) {
  const entry = children.get(name);
  if (!entry) return;
  entry.child.kill('SIGTERM');
  const timer = setTimeout(() => entry.child.kill('SIGKILL'), 20_000);
  await entry.exited;
  clearTimeout(timer);
}

/** The runner first, so it can deregister while the api still answers; then the api. */
async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  await stopChild('gpu-runner');
  await stopChild('api');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

async function waitReady(deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until && !stopping) {
    try {
      const res = await fetch(`${apiUrl}/readyz`);
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

async function graphql(key, query, variables) {
  const res = await fetch(`${apiUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return res.json();
}

/** A runner key kept under .data, created with the local admin key the first time. */
async function runnerKey() {
  const file = path.join(dataDir, 'runner-key');
  if (fs.existsSync(file)) {
    const key = fs.readFileSync(file, 'utf8').trim();
    const probe = await graphql(key, '{ viewer { role } }');
    if (probe.data?.viewer?.role === 'RUNNER') return key;
  }
  const adminFile = path.join(dataDir, 'admin-key');
  if (!fs.existsSync(adminFile)) return null;
  const admin = fs.readFileSync(adminFile, 'utf8').trim();
  const created = await graphql(
    admin,
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { token } }',
    { input: { name: 'local-runner', role: 'RUNNER' } },
  );
  const token = created.data?.createApiKey?.token;
  if (!token) return null;
  fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  return token;
}

// Owner only (docs/adr/0019): the runner key written below and everything the api keeps.
fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
fs.chmodSync(dataDir, 0o700);
start('api', [path.join(root, 'dist', 'src', 'main.js')], {
  PORT: String(port),
  DATA_DIR: dataDir,
});
if (!(await waitReady(120_000))) {
  if (!stopping) {
    log('the api did not become ready within 120 s');
    await shutdown(1);
  }
} else {
  const key = await runnerKey();
  if (key) {
    start('gpu-runner', [path.join(root, 'dist', 'gpu-runner', 'main.js')], {
      AETHER_API_URL: `${apiUrl}/graphql`,
      AETHER_RUNNER_KEY: key,
    });
    log(
      `Aether is up: the console at http://localhost:${port}/, GraphQL at http://localhost:${port}/graphql (admin key in ${path.join(dataDir, 'admin-key')})`,
    );
  } else {
    log(`no usable ${path.join(dataDir, 'admin-key')}: not starting a local gpu-runner`);
  }
}
