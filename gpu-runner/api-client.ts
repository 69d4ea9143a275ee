import { createHash } from 'node:crypto';
import fs from 'node:fs';
/**
 * The runner's only way into the platform: GraphQL over HTTP with a `runner` key. It holds
 * no database or Redis credentials.
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    /** Network failures and 5xx are worth retrying; a refused request is not. */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(
    private readonly url: string,
    private readonly key: string,
  ) {}

  /**
   * Downloads a run file into `file`, checking the SHA-256 the api sent; resolves to false
   * when there is nothing (204).
   */
  async download(route: string, file: string): Promise<{ headers: Headers } | null> {
    const res = await this.fetchFile(route, { method: 'GET' });
    if (res.status === 204) return null;
    const hash = createHash('sha256');
    const out = fs.createWriteStream(file);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
    } finally {
      await new Promise<void>((r) => out.end(r));
    }
    const expected = res.headers.get('x-content-sha256');
    if (expected && hash.digest('hex') !== expected)
      throw new ApiError(`${route}: the download does not match its SHA-256`, undefined, true);
    return { headers: res.headers };
  }

  /** Uploads a file's bytes with their SHA-256, which the api checks before recording anything. */
  async upload(route: string, bytes: Buffer): Promise<void> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await this.fetchFile(route, {
      method: 'PUT',
      body: bytes,
      headers: { 'x-content-sha256': sha256, 'content-type': 'application/octet-stream' },
    });
  }

  private async fetchFile(route: string, init: RequestInit): Promise<Response> {
    const url = new URL(route, this.url).toString();
    let res: Response;
    try {
      res = await fetch(url, {
        ...init,
        headers: {
          ...(init.headers as Record<string, string>),
          authorization: `Bearer ${this.key}`,
        },
        signal: AbortSignal.timeout(600_000),
      });
    } catch (e) {
      throw new ApiError(`cannot reach ${url}: ${(e as Error).message}`, undefined, true);
    }
    if (res.status >= 400) {
      const body = (await res.json().catch(() => ({}))) as {
        errors?: { message: string; extensions?: { code?: string; reason?: string } }[];
      };
      const e = body.errors?.[0];
      throw new ApiError(
        e?.message ?? `HTTP ${res.status} from ${url}`,
        e?.extensions?.reason ?? e?.extensions?.code,
        res.status >= 500,
      );
    }
    return res;
  }

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.key}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      throw new ApiError(`cannot reach ${this.url}: ${(e as Error).message}`, undefined, true);
    }
    const body = (await res.json().catch(() => ({}))) as {
      data?: T;
      errors?: { message: string; extensions?: { code?: string; reason?: string } }[];
    };
    if (body.errors?.length) {
      const e = body.errors[0];
      throw new ApiError(
        e.message,
        e.extensions?.reason ?? e.extensions?.code,
        res.status >= 500 || e.extensions?.code === 'INTERNAL_SERVER_ERROR',
      );
    }
    if (!res.ok || !body.data)
      throw new ApiError(`HTTP ${res.status} from ${this.url}`, undefined, res.status >= 500);
    return body.data;
  }
}
