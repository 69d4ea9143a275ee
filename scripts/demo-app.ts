import fs from 'node:fs';
import path from 'node:path';
import { type App, startApp } from '../src/app/app';
import { type Clock } from '../src/domain/shared/clock';
import { loadConfig } from '../src/infra/config/config';
import { createLogger } from '../src/infra/observability/logger';

export interface DemoApp {
  app: App;
  dataDir: string;
  /** The bootstrap admin key. */
  token: string;
  /** A GraphQL call with the admin key; GraphQL errors throw. */
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
}

/**
 * A fresh Aether for one demo: its own data directory under .data (wiped first), the
 * embedded default unless DATABASE_URL / REDIS_URL are set, a free port, quiet logs; a clock of
 * the demo's own when it replays time.
 */
export async function startDemoApp(
  name: string,
  env: Record<string, string> = {},
  overrides: { clock?: Clock } = {},
): Promise<DemoApp> {
  const dataDir = path.resolve(process.env.DATA_DIR ?? `.data/${name}`);
  fs.rmSync(dataDir, { recursive: true, force: true });
  const app = await startApp(
    loadConfig({
      ...process.env,
      DATA_DIR: dataDir,
      PORT: process.env.PORT ?? '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...env,
    }),
    { logger: createLogger('warn'), clock: overrides.clock },
  );
  const token = app.bootstrapAdminToken as string;
  const gql = async <T>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data as T;
  };
  return { app, dataDir, token, gql };
}
