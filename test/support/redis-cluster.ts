import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/infra/redis/embedded-redis';

/**
 * A local Redis Cluster of three masters, no replicas, for the tests that must hold on a
 * cluster (docs/adr/0029): three `redis-server --cluster-enabled yes` on free loopback ports,
 * joined with `redis-cli --cluster create`. `nodes` is what REDIS_CLUSTER_NODES takes.
 */
export interface LocalRedisCluster {
  nodes: string;
  ports: number[];
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<LocalRedisCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-redis-cluster-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        path.join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? Promise.resolve()
          : new Promise((r) => c.once('exit', r)),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(ports.map((p) => waitForPort(p, 10_000)));
    const created = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${created.stderr || created.stdout}`);
    await waitForClusterOk(ports[0], 20_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes: ports.map((p) => `127.0.0.1:${p}`).join(','), ports, stop };
}

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > end) reject(new Error(`redis-server on ${port} did not start`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

async function waitForClusterOk(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
      encoding: 'utf8',
      timeout: 5_000,
    });
    if (/cluster_state:ok/.test(info.stdout ?? '')) return;
    if (Date.now() > end) throw new Error(`the cluster did not become ok:\n${info.stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
