import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type SandboxConfig, type TrainerUser } from './trainer-sandbox';

/** The runner's settings, from its environment (README, "More runners"). */
export interface RunnerConfig {
  apiUrl: string;
  key: string;
  name: string;
  heartbeatMs: number;
  slots: number | null;
  pollMs: number;
  renewMs: number;
  cancelGraceMs: number;
  reportMs: number;
  hardwareMs: number;
}

function intEnv(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number): number {
  const v = Number(env[name] ?? dflt);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}`);
  return v;
}

function optionalIntEnv(env: NodeJS.ProcessEnv, name: string, min: number): number | null {
  return env[name] === undefined || env[name] === '' ? null : intEnv(env, name, 0, min);
}

export function loadRunnerConfig(env: NodeJS.ProcessEnv): RunnerConfig {
  const apiUrl = env.AETHER_API_URL ?? 'http://localhost:4000/graphql';
  let key = env.AETHER_RUNNER_KEY;
  if (!key && env.AETHER_RUNNER_KEY_FILE)
    key = fs.readFileSync(env.AETHER_RUNNER_KEY_FILE, 'utf8').trim();
  if (!key)
    throw new Error(
      'AETHER_RUNNER_KEY (or AETHER_RUNNER_KEY_FILE) must hold an API key with role RUNNER',
    );
  const name = (env.RUNNER_NAME ?? `${os.hostname()}-${process.pid}`)
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 100);
  return {
    apiUrl,
    key,
    name,
    heartbeatMs: intEnv(env, 'RUNNER_HEARTBEAT_MS', 10_000, 100),
    slots: env.RUNNER_SLOTS ? intEnv(env, 'RUNNER_SLOTS', 1, 1) : null,
    pollMs: intEnv(env, 'RUNNER_POLL_MS', 1_000, 10),
    renewMs: intEnv(env, 'RUNNER_LEASE_RENEW_MS', 10_000, 50),
    cancelGraceMs: intEnv(env, 'RUNNER_CANCEL_GRACE_MS', 10_000, 0),
    reportMs: intEnv(env, 'RUNNER_REPORT_MS', 1_000, 50),
    hardwareMs: intEnv(env, 'RUNNER_HARDWARE_MS', 5_000, 100),
  };
}

export const DEFAULT_TRAINER_PATH = '/usr/local/bin:/usr/bin:/bin';

/**
 * How trainers are confined (docs/adr/0019). `runnerUid` is the runner's own uid: only root
 * can run trainers as another user; any other runner runs them as itself and says so in
 * `warning`.
 */
export function loadSandboxConfig(
  env: NodeJS.ProcessEnv,
  runnerUid: number,
): { config: SandboxConfig; warning: string | null } {
  const requested = env.RUNNER_TRAINER_USER;
  let user: TrainerUser | null = null;
  let warning: string | null = null;
  if (runnerUid === 0) {
    user = lookupUser(requested || 'nobody');
    if (user.uid === 0)
      throw new Error(
        'RUNNER_TRAINER_USER must not be root: trainers run commands that API users choose',
      );
  } else {
    if (requested && lookupUser(requested).uid !== runnerUid)
      throw new Error(
        `RUNNER_TRAINER_USER=${requested} needs a runner started as root; this one runs as uid ${runnerUid} and cannot switch users`,
      );
    warning =
      `the runner runs as uid ${runnerUid}, not root, so trainers run as this same user: ` +
      'they get a clean environment, a directory of their own and resource limits, but can ' +
      "read whatever this user can (this runner's environment and key through /proc, key " +
      'files, the api data directory if this user owns it). Start the runner as root to run ' +
      'trainers as RUNNER_TRAINER_USER (default nobody); see docs/adr/0019.';
  }
  return {
    config: {
      user,
      path: env.RUNNER_TRAINER_PATH || DEFAULT_TRAINER_PATH,
      tools: { setpriv: findTool('setpriv', env.PATH), prlimit: findTool('prlimit', env.PATH) },
      limits: {
        openFiles: intEnv(env, 'RUNNER_TRAINER_NOFILE', 4096, 64),
        processes: intEnv(env, 'RUNNER_TRAINER_NPROC', 4096, 16),
        fileSizeMb: intEnv(env, 'RUNNER_TRAINER_FSIZE_MB', 65_536, 1),
        memoryMb: optionalIntEnv(env, 'RUNNER_TRAINER_MEMORY_MB', 64),
        cpuSeconds: optionalIntEnv(env, 'RUNNER_TRAINER_CPU_SECONDS', 1),
      },
    },
    warning,
  };
}

/** A user name or uid, through NSS (getent), so LDAP or sssd users work as well as /etc/passwd. */
function lookupUser(nameOrUid: string): TrainerUser {
  const r = spawnSync('getent', ['passwd', nameOrUid], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`cannot look up RUNNER_TRAINER_USER: ${r.error.message}`);
  const fields = r.stdout.trim().split('\n')[0]?.split(':') ?? [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (r.status !== 0 || fields.length < 4 || !Number.isInteger(uid) || !Number.isInteger(gid))
    throw new Error(`RUNNER_TRAINER_USER: there is no user "${nameOrUid}" on this host`);
  return { name: fields[0], uid, gid };
}

function findTool(name: string, searchPath = ''): string {
  for (const dir of [...searchPath.split(path.delimiter), '/usr/bin', '/bin']) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  throw new Error(
    `${name} (util-linux) was not found; the runner needs it to confine trainers (docs/adr/0019)`,
  );
}
