import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { FeatureType } from '../src/domain/features/feature-definition';
import { Role } from '../src/domain/auth/role';
import { median, round, runLoad, scale, writeResult, type LoadResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * features-online: one entity, 500 FLOAT features in one view, read over GraphQL HTTP by a
 * separate client process at concurrency 1 and 32. Baselines in the same run: a bare Apollo
 * Server answering 500 constant floats, and the raw ioredis read of the packed key (the
 * online store keeps a sorted set per entity, so the read is ZRANGE, not GET; the figure
 * keeps the issue's `redis_get_` name).
 */
const FEATURES = 500;

export async function main(): Promise<void> {
  const seconds = Math.max(1, Math.round(4 * scale()));
  const repeats = 5;
  const p = await startBenchPlatform('features_online', { FEATURE_STREAM_CONSUMER: 'off' });
  const bare = await startBareApollo();
  try {
    const s = p.app.services;
    await s.featureRegistry.createEntity({ name: 'customer', joinKeys: ['customer_id'] });
    const { version } = await s.featureRegistry.createView({
      name: 'wide',
      entity: 'customer',
      source: 'wide_src',
      ttlSeconds: 365 * 24 * 3600,
      allowedLatenessSeconds: 0,
      features: Array.from({ length: FEATURES }, (_, i) => ({
        name: `f${String(i).padStart(3, '0')}`,
        type: FeatureType.FLOAT,
        source: `f${i}`,
        transform: { kind: 'IDENTITY' as const },
        aggregation: null,
        validation: {},
      })),
    });
    const fields = Object.fromEntries(
      Array.from({ length: FEATURES }, (_, i) => [`f${i}`, Math.sin(i) * 1000]),
    );
    await s.ingestion.ingest(
      [version],
      [{ entityKey: 'c42', eventId: 'e1', eventTs: Date.now(), fields }],
      'bench',
    );
    const { token } = await s.apiKeys.create(null, { name: 'bench-viewer', role: Role.VIEWER });

    // The headline asks for the view's features as one ref (`wide@1:*`), as a serving client
    // does; the same read naming all 500 refs is measured beside it (explicit_refs_*).
    const query =
      'query Online($k: [String!]!, $r: [String!]!) { onlineFeatures(entityKeys: $k, featureRefs: $r) { vector freshness { asOf stale } } }';
    const body = JSON.stringify({ query, variables: { k: ['c42'], r: ['wide@1:*'] } });
    const refs = Array.from(
      { length: FEATURES },
      (_, i) => `wide@1:f${String(i).padStart(3, '0')}`,
    );
    const explicitBody = JSON.stringify({ query, variables: { k: ['c42'], r: refs } });
    const headers = { authorization: `Bearer ${token}` };
    for (const b of [body, explicitBody]) {
      const check = (await (
        await fetch(p.app.url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: b,
        })
      ).json()) as {
        data: { onlineFeatures: { vector: number[]; freshness: { stale: boolean }[] }[] };
      };
      const vector = check.data.onlineFeatures[0].vector;
      if (
        vector.length !== FEATURES ||
        vector[1] !== fields.f1 ||
        check.data.onlineFeatures[0].freshness[0].stale
      ) {
        throw new Error('online read returned the wrong values');
      }
    }
    const bareBody = JSON.stringify({ query: '{ floats }' });

    const runs = async (mk: () => Promise<LoadResult>, n = repeats): Promise<LoadResult[]> => {
      const out: LoadResult[] = [];
      for (let i = 0; i < n; i++) out.push(await mk());
      if (out.some((r) => r.errors > 0))
        throw new Error(`errors during load: ${JSON.stringify(out)}`);
      return out;
    };
    const http = (url: string, b: string, concurrency: number) => () =>
      runLoad({ mode: 'http', url, headers, body: b, concurrency, seconds, warmupSeconds: 1 });

    // One discarded run per server first: the first load after start-up pays for JIT tiers
    // and heap growth (p99 about twice the steady state), which is not what is compared.
    await http(p.app.url, body, 1)();
    await http(bare.url, bareBody, 1)();
    // Ours and the bare server alternate, run by run, so both see the machine in the same
    // state; the ratio compares medians over the runs.
    const c1: LoadResult[] = [];
    const bareC1: LoadResult[] = [];
    const explicitC1: LoadResult[] = [];
    for (let i = 0; i < repeats; i++) {
      c1.push(...(await runs(http(p.app.url, body, 1), 1)));
      bareC1.push(...(await runs(http(bare.url, bareBody, 1), 1)));
      explicitC1.push(...(await runs(http(p.app.url, explicitBody, 1), 1)));
    }
    const c32 = await runs(http(p.app.url, body, 32));
    const key = `${p.env.REDIS_PREFIX}ol:{${version.id}:c42}`;
    const redisC1 = await runs(() =>
      runLoad({
        mode: 'redis',
        url: p.env.REDIS_URL,
        key,
        concurrency: 1,
        seconds,
        warmupSeconds: 1,
      }),
    );

    const m = (rs: LoadResult[], k: keyof LoadResult) => median(rs.map((r) => r[k]));
    const figures = {
      p50_ms_c1: round(m(c1, 'p50')),
      p99_ms_c1: round(m(c1, 'p99')),
      rps_c1: round(m(c1, 'rps'), 0),
      p99_ms_c32: round(m(c32, 'p99')),
      rps_c32: round(m(c32, 'rps'), 0),
      bare_apollo_p50_ms_c1: round(m(bareC1, 'p50')),
      bare_apollo_p99_ms_c1: round(m(bareC1, 'p99')),
      redis_get_p50_ms_c1: round(m(redisC1, 'p50')),
      redis_get_p99_ms_c1: round(m(redisC1, 'p99')),
      p99_ratio_vs_bare_apollo_c1: round(m(c1, 'p99') / m(bareC1, 'p99'), 2),
      explicit_refs_p50_ms_c1: round(m(explicitC1, 'p50')),
      explicit_refs_p99_ms_c1: round(m(explicitC1, 'p99')),
      explicit_refs_p99_ratio_vs_bare_apollo_c1: round(m(explicitC1, 'p99') / m(bareC1, 'p99'), 2),
      features: FEATURES,
      seconds_per_run: seconds,
      runs: repeats,
    };
    writeResult('features-online', figures);
  } finally {
    await bare.stop();
    await p.close();
  }
}

/** The baseline: Apollo Server with nothing behind it, answering 500 constant floats. */
async function startBareApollo(): Promise<{ url: string; stop: () => Promise<void> }> {
  const floats = Array.from({ length: FEATURES }, (_, i) => Math.sin(i) * 1000);
  const server = new ApolloServer({
    typeDefs: 'type Query { floats: [Float!]! }',
    resolvers: { Query: { floats: () => floats } },
  });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return { url, stop: () => server.stop() };
}
