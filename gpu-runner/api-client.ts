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
      errors?: { message: string; extensions?: { code?: string } }[];
    };
    if (body.errors?.length) {
      const e = body.errors[0];
      throw new ApiError(
        e.message,
        e.extensions?.code,
        res.status >= 500 || e.extensions?.code === 'INTERNAL_SERVER_ERROR',
      );
    }
    if (!res.ok || !body.data)
      throw new ApiError(`HTTP ${res.status} from ${this.url}`, undefined, res.status >= 500);
    return body.data;
  }
}
