import { type ChildProcess, type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Readable } from 'node:stream';

/**
 * Confinement of trainer processes (docs/adr/0019). A trainer runs a command an API user
 * chose, on the runner's host: it gets only the protocol's environment (never a platform
 * key), a directory of its own, resource limits, and, when the runner is root, an
 * unprivileged user. What this does not give (the kernel, the network, the host's /tmp) is
 * listed in the ADR.
 */
export interface TrainerUser {
  name: string;
  uid: number;
  gid: number;
}

export interface TrainerLimits {
  openFiles: number;
  /** Counted per user by the kernel: every process and thread of every trainer of the user. */
  processes: number;
  fileSizeMb: number;
  /** RLIMIT_DATA (heap and private mappings), not RLIMIT_AS, which breaks CUDA and V8. */
  memoryMb: number | null;
  cpuSeconds: number | null;
}

export interface SandboxConfig {
  /** null: the runner is not root and runs trainers as itself. */
  user: TrainerUser | null;
  /** The trainer's PATH. */
  path: string;
  limits: TrainerLimits;
  /** util-linux's setpriv and prlimit, which set the trainer up and then exec it. */
  tools: { setpriv: string; prlimit: string };
}

/** A trainer reported a file that is not a regular file of its own inside its directory. */
export class TrainerFileError extends Error {}

const MB = 2 ** 20;
// The CPU limit's soft value sends SIGXCPU (reported as "CPU time limit"); the hard one,
// a little later, kills a trainer that ignores it.
const CPU_GRACE_SECONDS = 5;

/**
 * The command line that starts `command` confined: setpriv sets no_new_privs (a setuid
 * binary such as su or mount cannot raise the trainer's privileges) and kills the trainer
 * when the runner dies (its run resumes elsewhere; an orphan would hold the GPU); prlimit
 * sets the limits; both then exec, so the trainer keeps their pid.
 */
export function confinedCommand(config: SandboxConfig, command: string, args: string[]): string[] {
  const l = config.limits;
  return [
    config.tools.setpriv,
    '--no-new-privs',
    '--pdeathsig',
    'KILL',
    '--',
    config.tools.prlimit,
    `--nofile=${l.openFiles}`,
    `--nproc=${l.processes}`,
    `--fsize=${l.fileSizeMb * MB}`,
    // A core dump of a large trainer fills the disk and helps nobody reading Run.logTail.
    '--core=0',
    ...(l.memoryMb !== null ? [`--data=${l.memoryMb * MB}`] : []),
    ...(l.cpuSeconds !== null ? [`--cpu=${l.cpuSeconds}:${l.cpuSeconds + CPU_GRACE_SECONDS}`] : []),
    '--',
    command,
    ...args,
  ];
}

/** Why a trainer killed by this signal died, when a limit of the sandbox did it. */
export function limitSignalReason(signal: NodeJS.Signals): string | null {
  if (signal === 'SIGXCPU') return 'the trainer used up its CPU time (RUNNER_TRAINER_CPU_SECONDS)';
  if (signal === 'SIGXFSZ')
    return 'the trainer wrote a file over its size limit (RUNNER_TRAINER_FSIZE_MB)';
  return null;
}

export class TrainerSandbox {
  constructor(readonly config: SandboxConfig) {}

  /**
   * Fails at start, not at every run, when the trainer user cannot run what the runner will
   * ask it to (Node and the built-in trainer installed under a private home) or a limit is
   * above what this host allows.
   */
  check(readable: string[]): void {
    const script = `const fs = require('fs'); for (const f of ${JSON.stringify(readable)}) fs.accessSync(f, fs.constants.R_OK);`;
    const [cmd, ...args] = confinedCommand(this.config, process.execPath, ['-e', script]);
    const r = spawnSync(cmd, args, {
      cwd: '/',
      env: { PATH: this.config.path },
      encoding: 'utf8',
      timeout: 30_000,
      ...this.ids(),
    });
    if (r.error || r.status !== 0) {
      const who = this.config.user ? `user ${this.config.user.name}` : 'this user';
      const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n')[0];
      throw new Error(
        `trainers cannot run as ${who} (${why}): install Node and Aether where that user can read them, or change RUNNER_TRAINER_USER or the RUNNER_TRAINER_* limits`,
      );
    }
  }

  async workspace(): Promise<Workspace> {
    // realpath: the confinement check compares against the resolved path of opened files.
    const root = await fs.promises.realpath(
      await fs.promises.mkdtemp(path.join(os.tmpdir(), 'aether-run-')),
    );
    // The trainer may pass through but not list or rename anything here, so it can neither
    // find another run's directory nor swap its own for a link the runner would follow.
    await fs.promises.chmod(root, 0o711);
    const dir = path.join(root, randomBytes(12).toString('hex'));
    const ws = new Workspace(this.config, this.ids(), root, dir);
    await fs.promises.mkdir(dir, { mode: 0o700 });
    for (const d of [ws.outputDir, ws.checkpointDir, ws.home, ws.tmp])
      await fs.promises.mkdir(d, { mode: 0o700 });
    return ws;
  }

  private ids(): { uid: number; gid: number } | Record<string, never> {
    const u = this.config.user;
    return u ? { uid: u.uid, gid: u.gid } : {};
  }
}

/** One run's directory, and the trainer process that works in it. */
export class Workspace {
  readonly outputDir: string;
  readonly checkpointDir: string;
  readonly datasetPath: string;
  readonly resumePath: string;
  readonly home: string;
  readonly tmp: string;
  private child: ChildProcess | null = null;
  private handedOver = false;

  constructor(
    private readonly config: SandboxConfig,
    private readonly ids: { uid: number; gid: number } | Record<string, never>,
    private readonly root: string,
    readonly dir: string,
  ) {
    this.outputDir = path.join(dir, 'output');
    this.checkpointDir = path.join(dir, 'checkpoints');
    this.datasetPath = path.join(dir, 'dataset.arrow');
    this.resumePath = path.join(dir, 'resume.ckpt');
    this.home = path.join(dir, 'home');
    this.tmp = path.join(dir, 'tmp');
  }

  /**
   * Starts the trainer in its directory with the protocol's variables and nothing of the
   * runner's environment, under the limits, as the trainer user, in a process group of its
   * own so that what it forks can be killed with it.
   */
  async start(
    command: string,
    args: string[],
    inputs: Record<string, string>,
  ): Promise<ChildProcessByStdio<null, Readable, Readable>> {
    const u = this.config.user;
    this.handedOver = true;
    if (u) {
      // The inputs the runner downloaded go with the directory; all of it is the trainer's.
      for (const name of await fs.promises.readdir(this.dir))
        await fs.promises.chown(path.join(this.dir, name), u.uid, u.gid);
      await fs.promises.chown(this.dir, u.uid, u.gid);
    }
    const [cmd, ...confined] = confinedCommand(this.config, command, args);
    const child = spawn(cmd, confined, {
      cwd: this.dir,
      env: {
        PATH: this.config.path,
        HOME: this.home,
        TMPDIR: this.tmp,
        LANG: 'C.UTF-8',
        ...inputs,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...this.ids,
    });
    this.child = child;
    // Whatever it left running goes with it.
    child.once('exit', () => this.kill('SIGKILL'));
    return child;
  }

  /** SIGTERM reaches the trainer alone (it stops at its next checkpoint); SIGKILL its whole group. */
  kill(signal: 'SIGTERM' | 'SIGKILL'): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(signal === 'SIGKILL' ? -pid : pid, signal);
    } catch {
      // already gone
    }
  }

  /**
   * Reads a file the trainer reported (a checkpoint, the model). It must be a regular file
   * inside this directory, owned by the trainer user: the runner may be root, and a path or
   * link to anything else (the api's admin key) would otherwise be uploaded as an artifact.
   * The check is made on the opened file, so swapping a link after it cannot pass.
   */
  async readTrainerFile(reported: string): Promise<Buffer> {
    const file = path.resolve(this.dir, reported);
    const refuse = (why: string) =>
      new TrainerFileError(`the trainer reported ${reported}, which ${why}`);
    let fh: fs.promises.FileHandle;
    try {
      // O_NONBLOCK: a FIFO would otherwise block the runner until someone writes to it.
      const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
      fh = await fs.promises.open(file, flags);
    } catch (e) {
      throw refuse(`cannot be opened (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      const opened = await fs.promises.readlink(`/proc/self/fd/${fh.fd}`);
      const st = await fh.stat();
      if (!opened.startsWith(this.dir + path.sep)) throw refuse('is outside its directory');
      if (!st.isFile()) throw refuse('is not a regular file');
      if (this.config.user && st.uid !== this.config.user.uid)
        throw refuse(`is not owned by ${this.config.user.name}`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  /**
   * Kills what is left of the trainer and removes the directory. When the trainer had a
   * user of its own, its files are removed as that user: root recursing through a directory
   * that a leftover process can still change could be led by a link to delete anything.
   */
  async remove(): Promise<void> {
    this.kill('SIGKILL');
    // Before a trainer ran, everything here is the runner's own.
    if (!this.config.user || !this.handedOver)
      return fs.promises.rm(this.root, { recursive: true, force: true });
    await new Promise<void>((resolve) => {
      // It cannot remove the directory itself (root owns the parent): root does that below.
      const rm = spawn('rm', ['-rf', '--one-file-system', '--', this.dir], {
        env: { PATH: this.config.path },
        stdio: 'ignore',
        ...this.ids,
      });
      rm.once('close', () => resolve());
      rm.once('error', () => resolve());
    });
    await fs.promises.rmdir(this.dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    await fs.promises.rmdir(this.root);
  }
}

/**
 * Splits a trainer's output into lines, cutting a line at `max` characters: a trainer that
 * never prints a newline must not grow the runner's memory.
 */
export function readLines(stream: Readable, max: number, onLine: (line: string) => void): void {
  let pending = '';
  let dropping = false;
  const emit = (line: string) => {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    onLine(l.length > max ? `${l.slice(0, max)} [line cut at ${max} characters]` : l);
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (pending + chunk).split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      if (dropping) dropping = false;
      else emit(line);
    }
    if (pending.length > max) {
      if (!dropping) emit(pending);
      dropping = true;
      pending = '';
    }
  });
  stream.on('end', () => {
    if (pending && !dropping) emit(pending);
  });
}
