import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Per-app registry (tests run several apps in one process), exposed at GET /metrics. */
export class Metrics {
  readonly registry = new Registry();

  readonly graphqlRequests = new Counter({
    name: 'aether_graphql_requests_total',
    help: 'GraphQL operations by the root field called, type and outcome.',
    labelNames: ['operation', 'type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly graphqlDuration = new Histogram({
    name: 'aether_graphql_request_duration_seconds',
    help: 'GraphQL operation latency by the root field called.',
    labelNames: ['operation', 'type'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'aether_http_requests_total',
    help: 'HTTP requests by route and status code.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });

  readonly graphqlDbStatements = new Histogram({
    name: 'aether_graphql_db_statements',
    help: 'SQL statements one GraphQL operation sent, by the root field called (N + 1 shows here).',
    labelNames: ['operation', 'type'] as const,
    buckets: [0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500],
    registers: [this.registry],
  });

  readonly dbQueries = new Counter({
    name: 'aether_db_queries_total',
    help: 'SQL statements sent to the metadata database.',
    registers: [this.registry],
  });

  readonly dbConnectionWait = new Histogram({
    name: 'aether_db_connection_wait_seconds',
    help: 'Time a statement waited for a database connection, by lane (request or background).',
    labelNames: ['lane'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly dbConnectionHeld = new Histogram({
    name: 'aether_db_connection_held_seconds',
    help: 'Time a statement or transaction held its database connection, by lane.',
    labelNames: ['lane'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly eventsDropped = new Counter({
    name: 'aether_events_dropped_total',
    help: 'Subscription events dropped because a subscriber fell too far behind.',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly outboxRelayDelay = new Histogram({
    name: 'aether_outbox_relay_delay_seconds',
    help: 'Time from an event being committed to the outbox until the relay published it.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly deadLetters = new Counter({
    name: 'aether_dead_letters_total',
    help: 'Records set aside because the database refused their content, by writer.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly featureRecords = new Counter({
    name: 'aether_feature_records_total',
    help: 'Records ingested into feature views, by source and outcome (accepted or quarantined).',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly featureFreshness = new Histogram({
    name: 'aether_feature_freshness_seconds',
    help: 'Time from a record being appended to its source stream until it is readable online.',
    labelNames: ['source'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly predictions = new Counter({
    name: 'aether_predictions_total',
    help: 'Predictions by endpoint, the model version that actually ran, its role and outcome.',
    labelNames: ['endpoint', 'version', 'role', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly predictionLatency = new Histogram({
    name: 'aether_prediction_latency_seconds',
    help: 'Inference latency (batching wait included) by endpoint and model version.',
    labelNames: ['endpoint', 'version', 'role'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /** Set by the app: reads consumer lag on each scrape. */
  streamLagSource: (() => Promise<{ source: string; lag: number; pending: number }[]>) | null =
    null;

  readonly streamLag = new Gauge({
    name: 'aether_feature_stream_lag',
    help: 'Entries of a feature source stream not yet delivered to the ingestion consumer group.',
    labelNames: ['source'] as const,
    registers: [this.registry],
    collect: async () => {
      if (!this.streamLagSource) return;
      try {
        for (const l of await this.streamLagSource())
          this.streamLag.set({ source: l.source }, l.lag);
      } catch {
        // Redis down: readiness reports it; the gauge keeps its last value.
      }
    },
  });

  constructor(opts: { defaultMetrics: boolean }) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'aether_' });
  }
}
