import { ApolloServer, HeaderMap } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import {
  type DocumentNode,
  execute,
  getOperationAST,
  type GraphQLFormattedError,
  GraphQLError,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { ApiKeyErrorCode, type Principal } from '../domain/auth/api-key';
import { type RateDecision, type RateLimiter } from '../domain/auth/rate-limit';
import { roleSatisfies } from '../domain/auth/role';
import { DomainError, ErrorCategory } from '../domain/shared/domain-error';
import { assertCleanText } from '../domain/shared/input-text';
import { classifyDependencyError } from '../infra/dependency-errors';
import { type Logger } from '../infra/observability/logger';
import { type Metrics } from '../infra/observability/metrics';
import { type GraphQLContext } from '../resolvers/context';
import { formatError, toGraphQLError } from '../resolvers/errors';
import { createLoaders } from '../resolvers/loaders';
import { createConsoleRoute } from './console-route';
import { handleDatasetFiles } from './dataset-files';
import { handleStudyFiles } from './study-files';
import { inRequest } from '../infra/db/request-scope';
import { complexityPlugin, metricsPlugin } from './graphql-plugins';
import { predictJson } from './predict-route';
import { DEFAULT_QUERY_SHAPE, QueryGate } from './query-gate';
import { type Access, resolveAccess, ROUTES, type RouteName } from './routes';
import { handleRunFiles } from './run-files';
import { buildAppSchema } from './schema';
import { type Services } from './services';
import { CLOSE_KEY_REFUSED, refusal, type SocketSession, SocketSessions } from './socket-sessions';

export interface HttpServerOptions {
  port: number;
  host: string;
  production: boolean;
  /** DEBUG_ERRORS=1: unexpected errors keep their message and stack in responses. */
  debugErrors: boolean;
  maxBodyBytes: number;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  maxQueryTokens: number;
  services: Services;
  metrics: Metrics;
  logger: Logger;
  rateLimiter: RateLimiter;
  /** When set, GET /metrics needs `Authorization: Bearer <metricsKey>`. */
  metricsKey?: string;
  /** How often open sockets' keys are checked again, besides on every key event. */
  socketSweepMs: number;
  /** Readiness checks by name; each resolves when healthy and rejects with the reason. */
  readiness: Record<string, () => Promise<void>>;
  /** Facts shown beside the checks in /readyz, e.g. endpoints that failed to load. */
  readinessDetail?: () => Promise<Record<string, unknown>>;
}

export interface RunningHttpServer {
  port: number;
  url: string;
  /** Checks every open socket's key again now (call on key events). */
  sweepSockets(): Promise<void>;
  /** Stop accepting, finish in-flight requests (up to graceMs), close subscriptions. */
  close(graceMs: number): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export async function startHttpServer(o: HttpServerOptions): Promise<RunningHttpServer> {
  const schema = buildAppSchema();
  const access = resolveAccess(schema);
  const gate = new QueryGate(schema, {
    ...DEFAULT_QUERY_SHAPE,
    maxTokens: o.maxQueryTokens,
    maxDepth: o.maxQueryDepth,
    maxComplexity: o.maxQueryComplexity,
  });
  const format = formatError({
    debug: o.debugErrors,
    logInternal: (err) => o.logger.error({ err }, 'unexpected error while serving a request'),
    classify: classifyDependencyError,
  });
  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    formatError: format,
    includeStacktraceInErrorResponses: o.debugErrors,
    introspection: true,
    csrfPrevention: true,
    // Shutdown order is ours (see close()); Apollo must not race us on signals.
    stopOnTerminationSignals: false,
    parseOptions: { maxTokens: o.maxQueryTokens },
    validationRules: gate.validationRules,
    plugins: [
      // Browsers get the console's own GraphiQL (console-route.ts), not a CDN-loaded page.
      ApolloServerPluginLandingPageDisabled(),
      // No field sets cache hints; left on, it wraps every resolver to collect none.
      ApolloServerPluginCacheControlDisabled(),
      complexityPlugin(gate),
      metricsPlugin(o.metrics),
    ],
  });
  await apollo.start();

  const consoleRoute = createConsoleRoute({ production: o.production });
  let shuttingDown = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  const sockets = new SocketSessions();
  const authenticate = (token: string) => o.services.apiKeys.authenticate(token);

  const contextFor = (principal: Principal, cache: boolean): GraphQLContext => ({
    principal,
    services: o.services,
    loaders: createLoaders(o.services, { cache }),
  });

  const grants = (route: Access, principal: Principal): boolean =>
    route.kind !== 'role' || roleSatisfies(principal.role, route.role);

  /**
   * Authentication, the route's role, then the key's request budget. For a key this process
   * has confirmed before, the budget is taken while the verdict is re-confirmed: the key
   * epoch's GET and the rate limiter's script go out together, one round trip instead of
   * two. The early take counts only if the confirmed key is the same one and the route
   * admits it; otherwise the budget is taken again for the key that was confirmed.
   */
  const admit = async (
    route: Access,
    header: string | undefined,
    likely = o.services.apiKeys.cachedPrincipal(bearer(header)),
  ): Promise<Principal> => {
    const token = bearer(header);
    const early = likely && grants(route, likely) ? o.rateLimiter.take(likely.keyId) : null;
    const principal = await o.services.apiKeys.authenticate(token);
    if (route.kind === 'role' && !grants(route, principal))
      throw new DomainError(
        ErrorCategory.FORBIDDEN,
        ApiKeyErrorCode.INSUFFICIENT_ROLE,
        `${route.what} requires role ${route.role}; this key has ${principal.role}`,
        { required: route.role, held: principal.role },
      );
    await spend(principal, early && likely?.keyId === principal.keyId ? early : null);
    return principal;
  };

  /** Keys refused their budget lately, by when: they get no query run ahead of their check. */
  const refusedAt = new Map<string, number>();
  const recentlyRefused = (keyId: string): boolean =>
    (refusedAt.get(keyId) ?? -Infinity) > Date.now() - 1_000;

  const spend = async (
    principal: Principal,
    taken: Promise<RateDecision> | null = null,
  ): Promise<void> => {
    const d = await (taken ?? o.rateLimiter.take(principal.keyId));
    if (d.allowed) return;
    if (refusedAt.size >= 10_000) refusedAt.clear();
    refusedAt.set(principal.keyId, Date.now());
    throw new DomainError(
      ErrorCategory.RATE_LIMITED,
      ApiKeyErrorCode.RATE_LIMITED,
      `This API key is over its request rate; retry in ${Math.ceil(d.retryAfterMs / 1000)} s`,
      { retryAfterMs: d.retryAfterMs },
    );
  };

  const handleGraphQL = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const method = req.method ?? 'GET';
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const wantsLandingPage =
      method === 'GET' &&
      !url.searchParams.has('query') &&
      (headers.get('accept') ?? '').includes('text/html');
    // A query from a key this process has confirmed before runs while the key is confirmed
    // again (the epoch read, ADR 0017), and its answer is sent only once the same key, role
    // and permissions are confirmed: one Redis round trip off the request's path, the
    // guarantee unchanged. Not for mutations (their effects cannot be taken back), nor for a
    // key refused its budget in the last second (a flood must not buy executions).
    const authorization = headers.get('authorization');
    const likely = o.services.apiKeys.cachedPrincipal(bearer(authorization));
    const early =
      method === 'POST' &&
      likely &&
      grants(access.graphql, likely) &&
      !recentlyRefused(likely.keyId)
        ? likely
        : null;
    let principal: Principal | undefined;
    let confirming: Promise<Principal> | null = null;
    if (!wantsLandingPage) {
      const admitted = admit(access.graphql, authorization, likely);
      if (early) {
        confirming = admitted;
        admitted.catch(() => undefined);
      } else principal = await admitted;
    }
    // A refused key hears of that before anything about its body.
    const confirmed = async (): Promise<Principal> =>
      (principal ??= await (confirming as Promise<Principal>));
    let body: unknown;
    try {
      body = method === 'POST' ? await readJsonBody(req, o.maxBodyBytes) : undefined;
    } catch (e) {
      if (confirming) await confirmed();
      throw e;
    }
    // The shape limits hold before Apollo parses or validates anything.
    const query =
      method === 'POST'
        ? (body as { query?: unknown } | undefined)?.query
        : url.searchParams.get('query');
    let doc: DocumentNode | null = null;
    if (typeof query === 'string') {
      try {
        doc = gate.document(query);
      } catch (e) {
        if (confirming) await confirmed();
        if (e instanceof GraphQLError) return sendGraphQLErrors(res, 400, [e]);
        throw e;
      }
    }
    // Tallied from here: authentication above is the route's, not the operation's.
    const run = (who: Principal | undefined) =>
      inRequest(
        () =>
          apollo.executeHTTPGraphQLRequest({
            httpGraphQLRequest: { method, headers, search: url.search, body },
            context: async () => contextFor(who as Principal, true),
          }),
        true,
      );
    let response: Awaited<ReturnType<typeof run>>;
    if (early && confirming && doc && isQuery(doc, body)) {
      const ahead = run(early);
      ahead.catch(() => undefined);
      const who = await confirmed();
      response = samePrincipal(who, early) ? await ahead : await run(who);
    } else response = await run(confirming ? await confirmed() : principal);
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

  const handlers: Record<
    RouteName,
    (req: IncomingMessage, res: ServerResponse) => Promise<number>
  > = {
    healthz: async (_req, res) => sendJson(res, 200, { status: 'ok' }),
    readyz: async (_req, res) => sendReadiness(res),
    metrics: async (req, res) => {
      if (o.metricsKey && !sameSecret(bearer(req.headers.authorization), o.metricsKey))
        throw new HttpError(401, 'UNAUTHENTICATED', 'GET /metrics needs the METRICS_KEY');
      res.setHeader('content-type', o.metrics.registry.contentType);
      res.end(await o.metrics.registry.metrics());
      return 200;
    },
    graphql: (req, res) =>
      consoleRoute.wantsGraphiQL(req) ? consoleRoute.graphiql(req, res) : handleGraphQL(req, res),
    predict: async (req, res) => {
      if (req.method !== 'POST')
        throw new HttpError(405, 'BAD_REQUEST', 'POST a JSON body to /v1/predict/<endpoint>');
      await admit(access.predict, req.headers.authorization);
      const body = await readJsonBody(req, o.maxBodyBytes);
      assertCleanText(body, 'body');
      const endpoint = pathText(pathOf(req).slice('/v1/predict/'.length), 'endpoint');
      return sendJson(res, 200, await predictJson(endpoint, body, o.services.serving));
    },
    runs: async (req, res) => {
      const principal = await admit(access.runs, req.headers.authorization);
      return handleRunFiles(req, res, principal, o.services.runExecution, pathText);
    },
    datasets: async (req, res) => {
      await admit(access.datasets, req.headers.authorization);
      return handleDatasetFiles(req, res, o.services.datasets, pathText);
    },
    studies: async (req, res) => {
      await admit(access.studies, req.headers.authorization);
      return handleStudyFiles(req, res, o.services.studyResults, pathText);
    },
    console: (req, res) => consoleRoute.serve(req, res, pathOf(req)),
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = pathOf(req);
    const route = ROUTES.find((r) => r.matches(path));
    let status = 500;
    inFlight++;
    try {
      if (shuttingDown) res.setHeader('connection', 'close');
      if (!route) status = sendError(res, 404, 'NOT_FOUND', 'No such route');
      else if (!route.methods.includes(req.method ?? 'GET'))
        throw new HttpError(405, 'BAD_REQUEST', `${req.method} is not allowed on ${route.name}`);
      else status = await inRequest(() => handlers[route.name](req, res));
    } catch (e) {
      // A stream that fails after its head was sent (a dataset failing verification at its
      // end) can only be cut off: the client sees a truncated body, never a complete one.
      if (res.headersSent) res.destroy(e instanceof Error ? e : new Error(String(e)));
      status = res.headersSent ? 500 : sendFailure(res, e);
      if (status >= 500 && status !== 503) o.logger.error({ err: e }, 'request failed');
    } finally {
      o.metrics.httpRequests.inc({ route: route?.name ?? 'other', status: String(status) });
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
    const detail = o.readinessDetail
      ? await withTimeout(o.readinessDetail(), 2_000, 'detail timed out').catch(() => ({}))
      : {};
    return sendJson(res, ok ? 200 : 503, {
      status: ok ? 'ready' : 'unavailable',
      failing,
      checks,
      ...detail,
    });
  };

  const sendFailure = (res: ServerResponse, e: unknown): number => {
    if (e instanceof HttpError) return sendError(res, e.status, e.code, e.message, e.extensions);
    const domain = e instanceof DomainError ? e : classifyDependencyError(e);
    if (domain) {
      const g = toGraphQLError(domain);
      const status = (g.extensions.http as { status: number }).status;
      const ext: Record<string, unknown> = { ...g.extensions };
      delete ext.http;
      if (status === 429)
        res.setHeader('retry-after', String(retryAfterSeconds(domain.details?.retryAfterMs)));
      return sendJson(res, status, { errors: [{ message: g.message, extensions: ext }] });
    }
    return sendError(
      res,
      500,
      'INTERNAL_SERVER_ERROR',
      o.debugErrors ? String(e) : 'Internal server error',
    );
  };

  const server = http.createServer((req, res) => void handler(req, res));
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;

  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: o.maxBodyBytes });
  const wsServer = useServer<Record<string, unknown>, { session?: SocketSession }>(
    {
      schema,
      // A query or mutation over the socket is a request like one over HTTP (request-scope.ts).
      execute: (args) => inRequest(async () => execute(args), true),
      onConnect: async (ctx) => {
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const token = bearer(typeof raw === 'string' ? raw : undefined);
        try {
          const principal = await admit(access.graphql, token);
          const socket = ctx.extra.socket;
          const session: SocketSession = {
            token: token as string,
            principal,
            close: (code, reason) => socket.close(code, reason.slice(0, 120)),
          };
          ctx.extra.session = session;
          sockets.add(session);
          return true;
        } catch {
          return false;
        }
      },
      onClose: (ctx) => {
        if (ctx.extra.session) sockets.remove(ctx.extra.session);
      },
      // Every operation on a socket is admitted like an HTTP request: its key checked again
      // (a revoked key closes the socket), its budget charged, its document limited.
      onSubscribe: async (ctx, _id, payload) => {
        const session = ctx.extra.session as SocketSession;
        const why = await refusal(authenticate, session.token, session.principal);
        if (why !== null && why !== 'unknown') {
          sockets.remove(session);
          session.close(CLOSE_KEY_REFUSED, why);
          return [codedError(why, 'UNAUTHENTICATED', { reason: ApiKeyErrorCode.REVOKED_KEY })];
        }
        try {
          await spend(session.principal);
          const document = gate.document(payload.query);
          const invalid = gate.validate(document);
          if (invalid.length) return invalid;
          gate.assertAffordable(document, payload.operationName, payload.variables ?? {});
          return {
            schema,
            document,
            operationName: payload.operationName,
            variableValues: payload.variables,
            contextValue: contextFor(session.principal, false),
          };
        } catch (e) {
          if (e instanceof GraphQLError) return [e];
          if (e instanceof DomainError) return [toGraphQLError(e)];
          throw e;
        }
      },
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
  const sweepTimer = setInterval(() => void sockets.sweep(authenticate), o.socketSweepMs);
  sweepTimer.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = o.host === '0.0.0.0' || o.host === '::' ? 'localhost' : o.host;

  return {
    port,
    url: `http://${hostForUrl}:${port}/graphql`,
    sweepSockets: () => sockets.sweep(authenticate),
    async close(graceMs: number) {
      shuttingDown = true;
      clearInterval(sweepTimer);
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

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0];
}

/** A percent-decoded path segment, held to the edge rule for strings. */
function pathText(raw: string, name: string): string {
  let text: string;
  try {
    text = decodeURIComponent(raw);
  } catch {
    throw new HttpError(
      400,
      'BAD_USER_INPUT',
      `The ${name} in the path is not valid percent-encoding`,
      {
        reason: 'INVALID_PATH',
        argument: name,
      },
    );
  }
  assertCleanText(text, name);
  return text;
}

function bearer(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return m ? m[1].trim() : header.trim();
}

function sameSecret(given: string | undefined, expected: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function retryAfterSeconds(ms: unknown): number {
  return Math.max(1, Math.ceil((typeof ms === 'number' ? ms : 1000) / 1000));
}

function codedError(
  message: string,
  code: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
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

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extensions: Record<string, unknown> = {},
): number {
  return sendJson(res, status, { errors: [{ message, extensions: { code, ...extensions } }] });
}

function sendGraphQLErrors(res: ServerResponse, status: number, errors: GraphQLError[]): number {
  return sendJson(res, status, {
    errors: errors.map((e) => {
      const ext: Record<string, unknown> = { ...e.extensions };
      delete ext.http;
      return { message: e.message, extensions: ext };
    }),
  });
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

/** Whether the operation the body names (or the only one) is a query. */
function isQuery(doc: DocumentNode, body: unknown): boolean {
  const name = (body as { operationName?: unknown } | undefined)?.operationName;
  return getOperationAST(doc, typeof name === 'string' ? name : undefined)?.operation === 'query';
}

/** The same key with the same role and permissions. */
function samePrincipal(a: Principal, b: Principal): boolean {
  if (a === b) return true;
  const perms = (p: Principal) => [...(p.permissions ?? [])].sort().join(',');
  return a.keyId === b.keyId && a.role === b.role && perms(a) === perms(b);
}
