import path from 'node:path';
import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('defaults to the embedded stack', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      port: 4000,
      databaseUrl: undefined,
      redisUrl: undefined,
    });
    expect(c.artifacts).toEqual({ kind: 'fs', root: path.resolve('.data/artifacts') });
  });

  it('reads an S3 artifact store with path-style addressing for a custom endpoint', () => {
    const c = loadConfig({
      ARTIFACT_STORE_URL: 's3://models/prod/aether',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
    });
    expect(c.artifacts).toEqual({
      kind: 's3',
      bucket: 'models',
      prefix: 'prod/aether',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
  });

  it('honours ONLINE_CLIENT_CACHE, the former name of REDIS_CLIENT_CACHE, when the new one is not set', () => {
    expect(loadConfig({}).redisClientCache).toBe(true);
    expect(loadConfig({ ONLINE_CLIENT_CACHE: 'off' }).redisClientCache).toBe(false);
    expect(loadConfig({ REDIS_CLIENT_CACHE: 'off' }).redisClientCache).toBe(false);
    expect(
      loadConfig({ ONLINE_CLIENT_CACHE: 'off', REDIS_CLIENT_CACHE: 'on' }).redisClientCache,
    ).toBe(true);
  });

  it.each([
    [{ PORT: '70000' }, 'PORT must be an integer from 0 to 65535 (got "70000")'],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV must be development, production or test (got "staging")'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL must use redis: or rediss:'],
    [{ REDIS_CLUSTER_NODES: '10.0.0.1:7000,:x' }, 'REDIS_CLUSTER_NODES must be a comma-separated'],
    [
      { REDIS_CLUSTER_NODES: 'http://10.0.0.1:7000' },
      'REDIS_CLUSTER_NODES must be a comma-separated',
    ],
    [{ DATABASE_URL: 'postgres://u:secret@h:port/db' }, 'DATABASE_URL must be a URL'],
    [{ DATABASE_SCHEMA: 'Bad-Name' }, 'DATABASE_SCHEMA must be a lower-case SQL identifier'],
    [{ MAX_BODY_BYTES: '12' }, 'MAX_BODY_BYTES must be an integer from 1024'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of'],
  ])('rejects %p with one line naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads REDIS_CLUSTER_NODES as seed nodes, credentials from a URL among them', () => {
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis://:s%40cret@10.0.0.2:7001,h3' })
        .redisCluster,
    ).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'h3', port: 6379 },
      ],
      username: undefined,
      password: 's@cret',
    });
    expect(loadConfig({}).redisCluster).toBeUndefined();
  });

  it('never echoes a password from a bad URL', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://u:hunter2@h:port/db' })).toThrow(/\*\*\*@/);
    expect(() => loadConfig({ DATABASE_URL: 'postgres://u:hunter2@h:port/db' })).not.toThrow(
      /hunter2/,
    );
  });
});
