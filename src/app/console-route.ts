import fs from 'node:fs';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';

/**
 * Serves the built console (console/dist) at `/`: files by their path, client routes
 * (`/lineage`, `/runs?run=…`) as index.html, and GraphiQL to browsers that open `/graphql`.
 * A request can only ever read a regular file inside the build folder: the path is decoded
 * once, normalized as a rooted path (no `..` can climb above the root), resolved, and its
 * real path must still lie inside the folder.
 */
export interface ConsoleRoute {
  /** A browser navigating to /graphql (GET, HTML accepted, no query): gets GraphiQL. */
  wantsGraphiQL(req: IncomingMessage): boolean;
  graphiql(req: IncomingMessage, res: ServerResponse): Promise<number>;
  /** GET or HEAD of anything the api does not route itself; answers and returns the status. */
  serve(req: IncomingMessage, res: ServerResponse, urlPath: string): Promise<number>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.ttf': 'font/ttf',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.svg', '.map', '.ttf']);
/** Vite names every built asset with a content hash: a name never changes content. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The repository's console/dist, from src/app under jest or dist/src/app when built. */
export function defaultConsoleDir(): string {
  const up = path.resolve(__dirname, '../..');
  const root = path.basename(up) === 'dist' ? path.dirname(up) : up;
  return path.join(root, 'console', 'dist');
}

export function createConsoleRoute(o: { production: boolean; dir?: string }): ConsoleRoute {
  const dir = path.resolve(o.dir ?? defaultConsoleDir());
  // Compressed once per file version; the build is a few files that do not change while
  // the api runs (a rebuild changes their mtimes and names).
  const gzipped = new Map<string, { mtimeMs: number; body: Buffer }>();

  const send = async (
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    cache: string,
  ): Promise<number> => {
    const stat = await fs.promises.stat(file);
    const ext = path.extname(file);
    res.setHeader('content-type', TYPES[ext] ?? 'application/octet-stream');
    res.setHeader('cache-control', cache);
    res.setHeader('x-content-type-options', 'nosniff');
    let body: Buffer = await fs.promises.readFile(file);
    if (COMPRESSIBLE.has(ext) && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      let hit = gzipped.get(file);
      if (!hit || hit.mtimeMs !== stat.mtimeMs) {
        hit = { mtimeMs: stat.mtimeMs, body: zlib.gzipSync(body, { level: 9 }) };
        gzipped.set(file, hit);
      }
      body = hit.body;
      res.setHeader('content-encoding', 'gzip');
      res.setHeader('vary', 'accept-encoding');
    }
    res.setHeader('content-length', body.length);
    res.statusCode = 200;
    res.end(req.method === 'HEAD' ? undefined : body);
    return 200;
  };

  /** Errors in the api's own shape: a GraphQL-style `errors` list with a code. */
  const fail = (res: ServerResponse, status: number, code: string, message: string): number => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
    return status;
  };

  const notBuilt = (res: ServerResponse): number =>
    fail(
      res,
      503,
      'SERVICE_UNAVAILABLE',
      'The console is not built: run `npm run console:build` (npm start does it).',
    );

  /** The file a URL path names inside `dir`, or null when it names none. */
  const resolve = async (urlPath: string): Promise<string | null> => {
    let rel: string;
    try {
      rel = decodeURIComponent(urlPath);
    } catch {
      return null;
    }
    if (rel.includes('\0') || rel.includes('\\')) return null;
    const file = path.join(dir, path.posix.normalize(`/${rel}`));
    if (!file.startsWith(dir + path.sep)) return null;
    try {
      const real = await fs.promises.realpath(file);
      const realDir = await fs.promises.realpath(dir);
      if (!real.startsWith(realDir + path.sep)) return null;
      return (await fs.promises.stat(real)).isFile() ? real : null;
    } catch {
      return null;
    }
  };

  return {
    wantsGraphiQL(req) {
      if (o.production || req.method !== 'GET') return false;
      const url = new URL(req.url ?? '/', 'http://localhost');
      return (
        !url.searchParams.has('query') && String(req.headers.accept ?? '').includes('text/html')
      );
    },

    async graphiql(req, res) {
      const page = path.join(dir, 'graphiql.html');
      if (!fs.existsSync(page)) return notBuilt(res);
      return send(req, res, page, 'no-cache');
    },

    async serve(req, res, urlPath) {
      const file = urlPath === '/' ? null : await resolve(urlPath);
      if (file)
        return send(req, res, file, urlPath.startsWith('/assets/') ? IMMUTABLE : 'no-cache');
      // A browser navigating to a client route (no extension) gets the app, which draws the
      // page; anything else that names no file (an asset of an older build, a traversal
      // attempt, an API client's typo) is a plain 404.
      const page =
        urlPath === '/' ||
        (!path.posix.extname(urlPath) &&
          !urlPath.startsWith('/assets/') &&
          String(req.headers.accept ?? '').includes('text/html'));
      if (!page) return fail(res, 404, 'NOT_FOUND', 'No such route');
      const index = path.join(dir, 'index.html');
      return fs.existsSync(index) ? send(req, res, index, 'no-cache') : notBuilt(res);
    },
  };
}
