import { ApolloServer, HeaderMap } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { type GraphQLFormattedError, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { type Principal } from '../domain/auth/api-key';
import { DomainError } from '../domain/shared/domain-error';
import { type Logger } from '../infra/observability/logger';
import { type Metrics } from '../infra/observability/metrics';
import { type GraphQLContext } from '../resolvers/context';
import { formatError, toGraphQLError } from '../resolvers/errors';
import { createLoaders } from '../resolvers/loaders';
import { complexityPlugin, metricsPlugin } from './graphql-plugins';
import { handleDatasetFiles, isDatasetFilePath } from './dataset-files';
import { predictJson } from './predict-route';
import { handleRunFiles } from './run-files';
import { buildAppSchema } from './schema';
import { type Services } from './services';

export interface HttpServerOptions {
  port: number;
  host: string;
  production: boolean;
  maxBodyBytes: number;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  services: Services;
  metrics: Metrics;
  logger: Logger;
  /** Readiness checks by name; each resolves when healthy and rejects with the reason. */
  readiness: Record<string, () => Promise<void>>;
}

export interface RunningHttpServer {
  port: number;
  url: string;
  /** Stop accepting, finish in-flight requests (up to graceMs), close subscriptions. */
  close(graceMs: number): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startHttpServer(o: HttpServerOptions): Promise<RunningHttpServer> {
  const schema = buildAppSchema();
  const format = formatError({
    production: o.production,
    logInternal: (err) => o.logger.error({ err }, 'unexpected error while serving a request'),
  });
  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    formatError: format,
    includeStacktraceInErrorResponses: !o.production,
    introspection: true,
    csrfPrevention: true,
    // Shutdown order is ours (see close()); Apollo must not race us on signals.
    stopOnTerminationSignals: false,
    validationRules: [
      maxDepthRule({
        n: o.maxQueryDepth,
        exposeLimits: true,
        ignoreIntrospection: true,
        flattenFragments: true,
        // Report as a validation error (400, GRAPHQL_VALIDATION_FAILED) instead of throwing.
        propagateOnRejection: false,
        onReject: [
          (ctx, err) =>
            ctx?.reportError(new GraphQLError(err.message.replace(/^Syntax Error: /, ''))),
        ],
      }),
    ],
    plugins: [
      o.production
        ? ApolloServerPluginLandingPageDisabled()
        : ApolloServerPluginLandingPageLocalDefault({ embed: true }),
      // No field sets cache hints; left on, it wraps every resolver to collect none.
      ApolloServerPluginCacheControlDisabled(),
      complexityPlugin(o.maxQueryComplexity),
      metricsPlugin(o.metrics),
    ],
  });
  await apollo.start();

  let shuttingDown = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;

  const contextFor = (principal: Principal, cache: boolean): GraphQLContext => ({
    principal,
    services: o.services,
    loaders: createLoaders(o.services, { cache }),
  });

  const handleGraphQL = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'POST')
      throw new HttpError(405, 'BAD_REQUEST', `Method ${method} is not allowed on /graphql`);
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const wantsLandingPage =
      method === 'GET' &&
      !url.searchParams.has('query') &&
      (headers.get('accept') ?? '').includes('text/html');
    let principal: Principal | undefined;
    if (!wantsLandingPage)
      principal = await o.services.apiKeys.authenticate(bearer(headers.get('authorization')));
    const body = method === 'POST' ? await readJsonBody(req, o.maxBodyBytes) : undefined;
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method, headers, search: url.search, body },
      context: async () => contextFor(principal as Principal, true),
    });
    const status = response.status ?? 200;
    for (const [k, v] of response.headers) res.setHeader(k, v);
    res.statusCode = status;
    if (response.body.kind === 'complete') {
      res.end(response.body.string);
    } else {
      for await (const chunk of response.body.asyncIterator) res.write(chunk);
      res.end();
    }
    return status;
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    let route = path === '/graphql' ? 'graphql' : path.slice(1) || 'root';
    let status = 500;
    inFlight++;
    try {
      if (shuttingDown) res.setHeader('connection', 'close');
      if (path === '/healthz') status = sendJson(res, 200, { status: 'ok' });
      else if (path === '/readyz') status = await sendReadiness(res);
      else if (path === '/metrics') {
        res.setHeader('content-type', o.metrics.registry.contentType);
        res.end(await o.metrics.registry.metrics());
        status = 200;
      } else if (path === '/graphql') status = await handleGraphQL(req, res);
      else if (path.startsWith('/v1/predict/')) {
        route = 'predict';
        if (req.method !== 'POST')
          throw new HttpError(405, 'BAD_REQUEST', 'POST a JSON body to /v1/predict/<endpoint>');
        await o.services.apiKeys.authenticate(bearer(req.headers.authorization));
        const body = await readJsonBody(req, o.maxBodyBytes);
        const endpoint = decodeURIComponent(path.slice('/v1/predict/'.length));
        status = sendJson(res, 200, await predictJson(endpoint, body, o.services.serving));
      } else if (isDatasetFilePath(path)) {
        route = 'datasets';
        const principal = await o.services.apiKeys.authenticate(bearer(req.headers.authorization));
        status = await handleDatasetFiles(req, res, principal, o.services.datasets);
      } else if (path.startsWith('/runs/')) {
        route = 'runs';
        const principal = await o.services.apiKeys.authenticate(bearer(req.headers.authorization));
        status = await handleRunFiles(req, res, principal, o.services.training);
      } else {
        route = 'other';
        status = sendError(res, 404, 'NOT_FOUND', `No route ${path}`);
      }
    } catch (e) {
      // A stream that fails after its head was sent (a dataset failing verification at its
      // end) can only be cut off: the client sees a truncated body, never a complete one.
      if (res.headersSent) res.destroy(e instanceof Error ? e : new Error(String(e)));
      status = res.headersSent ? 500 : sendFailure(res, e);
      if (status >= 500) o.logger.error({ err: e }, 'request failed');
    } finally {
      o.metrics.httpRequests.inc({ route, status: String(status) });
      inFlight--;
      if (inFlight === 0 && drained) drained();
    }
  };

  const sendReadiness = async (res: ServerResponse): Promise<number> => {
    const checks: Record<string, { ok: boolean; error?: string }> = {};
    await Promise.all(
      Object.entries(o.readiness).map(async ([name, check]) => {
        try {
          await withTimeout(check(), 2_000, `${name} did not answer within 2 s`);
          checks[name] = { ok: true };
        } catch (e) {
          checks[name] = { ok: false, error: e instanceof Error ? e.message : String(e) };
        }
      }),
    );
    const failing = Object.keys(checks).filter((k) => !checks[k].ok);
    if (shuttingDown) failing.push('shutting-down');
    const ok = failing.length === 0;
    return sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', failing, checks });
  };

  const sendFailure = (res: ServerResponse, e: unknown): number => {
    if (e instanceof HttpError) return sendError(res, e.status, e.code, e.message);
    if (e instanceof DomainError) {
      const g = toGraphQLError(e);
      const http = (g.extensions.http as { status: number }).status;
      const ext: Record<string, unknown> = { ...g.extensions };
      delete ext.http;
      return sendJson(res, http, { errors: [{ message: g.message, extensions: ext }] });
    }
    return sendError(
      res,
      500,
      'INTERNAL_SERVER_ERROR',
      o.production ? 'Internal server error' : String(e),
    );
  };

  const server = http.createServer((req, res) => void handler(req, res));
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;

  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: o.maxBodyBytes });
  const wsServer = useServer<Record<string, unknown>, { principal?: Principal }>(
    {
      schema,
      onConnect: async (ctx) => {
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        try {
          ctx.extra.principal = await o.services.apiKeys.authenticate(
            bearer(typeof raw === 'string' ? raw : undefined),
          );
          return true;
        } catch {
          return false;
        }
      },
      context: (ctx) => contextFor(ctx.extra.principal as Principal, false),
      // Errors that end a subscription (its source failed) get codes like any other.
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => format(e.toJSON(), e)),
      onNext: (_ctx, _id, _payload, _args, result) => {
        if (!('errors' in result) || !result.errors) return result;
        return {
          ...result,
          errors: result.errors.map((e) =>
            format(e instanceof GraphQLError ? e.toJSON() : (e as GraphQLFormattedError), e),
          ),
        };
      },
    },
    wss,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = o.host === '0.0.0.0' || o.host === '::' ? 'localhost' : o.host;

  return {
    port,
    url: `http://${hostForUrl}:${port}/graphql`,
    async close(graceMs: number) {
      shuttingDown = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await wsServer.dispose();
      wss.close();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise((resolve) => setTimeout(resolve, graceMs).unref()),
        ]);
      }
      server.closeAllConnections();
      await closed;
      await apollo.stop();
    },
  };
}

function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return m ? m[1].trim() : header.trim();
}

/** Reads at most `limit` bytes; a larger body is refused with 413 without buffering it. */
async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    req.resume();
    throw new HttpError(
      413,
      'BAD_REQUEST',
      `Request body of ${declared} bytes exceeds the limit of ${limit} bytes`,
    );
  }
  // Events rather than `for await`: the async iterator costs more than a small body's parse.
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(
          new HttpError(413, 'BAD_REQUEST', `Request body exceeds the limit of ${limit} bytes`),
        );
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () =>
      resolve(
        chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'),
      ),
    );
    req.once('error', reject);
  });
  const type = req.headers['content-type'] ?? '';
  if (!type.includes('application/json')) return text;
  if (text.length === 0) throw new HttpError(400, 'BAD_REQUEST', 'Empty request body');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'BAD_REQUEST', `Malformed JSON body: ${(e as Error).message}`);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): number {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
  return status;
}

function sendError(res: ServerResponse, status: number, code: string, message: string): number {
  return sendJson(res, status, { errors: [{ message, extensions: { code } }] });
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
