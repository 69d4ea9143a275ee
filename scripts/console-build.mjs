#!/usr/bin/env node
// Builds the console (console/dist) when it is missing or older than its sources, after
// installing its own dependencies when they are missing or older than its lock file.
// Used by `npm start` and `npm test`; `node scripts/console-build.mjs` runs it alone.
// Plain JavaScript on purpose: it runs before any dependency is installed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const consoleDir = path.join(root, 'console');
const log = (msg) => process.stderr.write(`[console] ${msg}\n`);

/** Newest modification time of a file or of any file below a folder. */
function newest(p) {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const e of fs.readdirSync(p)) m = Math.max(m, newest(path.join(p, e)));
  return m;
}

/**
 * onnxruntime-node's postinstall downloads CUDA binaries, which fails offline. npm 11 skips
 * it anyway (package.json's `allowScripts` denies it); older npm runs install scripts, and
 * this variable, which the script documents, makes it exit at once (docs/adr/0001).
 */
export const NPM_INSTALL_ENV = { ONNXRUNTIME_NODE_INSTALL: 'skip' };

function npm(args) {
  const r = spawnSync('npm', args, {
    cwd: consoleDir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...NPM_INSTALL_ENV },
  });
  if (r.status !== 0)
    throw new Error(`npm ${args.join(' ')} in console/ failed (exit ${r.status ?? r.signal})`);
}

export function ensureConsoleBuilt() {
  const marker = path.join(consoleDir, 'node_modules', '.package-lock.json');
  const lock = path.join(consoleDir, 'package-lock.json');
  if (!fs.existsSync(marker) || fs.statSync(lock).mtimeMs > fs.statSync(marker).mtimeMs) {
    log('installing the console’s dependencies (npm ci)');
    npm(['ci', '--no-audit', '--no-fund']);
  }
  const built = path.join(consoleDir, 'dist', 'index.html');
  const sources = Math.max(
    ...['src', 'index.html', 'graphiql.html', 'vite.config.mts', 'package-lock.json'].map((f) =>
      newest(path.join(consoleDir, f)),
    ),
  );
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= sources) return false;
  log('building the console (vite build)');
  npm(['run', 'build', '--silent', '--', '--logLevel', 'error']);
  return true;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    ensureConsoleBuilt();
  } catch (e) {
    log(e.message);
    process.exit(1);
  }
}
