import { DuckDbPointInTimeEngine } from '../infra/duckdb/point-in-time-engine';
import { ApiKeyService } from '../domain/auth/api-key.service';
import { type ArtifactStore } from '../domain/artifacts/artifact-store';
import { type EventBus } from '../domain/events/event-bus';
import { DatasetService } from '../domain/features/dataset.service';
import { FeatureIngestionService } from '../domain/features/feature-ingestion.service';
import { FeatureBackfillService } from '../domain/features/feature-backfill.service';
import { OfflineCompactionService } from '../domain/features/offline-compaction.service';
import { FeatureRegistryService } from '../domain/features/feature-registry.service';
import { OnlineFeatureService } from '../domain/features/online-features.service';
import { QuarantineService } from '../domain/features/quarantine.service';
import { type StreamLag } from '../domain/features/feature-store.ports';
import { RunnerService } from '../domain/runners/runner.service';
import { TrainingService } from '../domain/training/training.service';
import { RunExecutionService } from '../domain/training/run-execution.service';
import { RunEvents } from '../domain/training/run-events';
import { StudyService } from '../domain/hpo/study.service';
import { SqlStudyRepository } from '../infra/db/hpo/study.repository';
import { StudyResultsService } from '../domain/hpo/study-results.service';
import { SqlStudyRegistrations } from '../infra/db/hpo/study-registration.repository';
import { ModelRegistryService } from '../domain/registry/model-registry.service';
import { LineageService } from '../domain/lineage/lineage';
import { SqlModelRegistryRepository } from '../infra/db/registry/model-registry.repository';
import { SqlLineageRepository } from '../infra/db/lineage/lineage.repository';
import { OnnxModelInspector } from '../infra/onnx/inspector';
import { OnnxModelRunner } from '../infra/onnx/runner';
import { MonitoringService } from '../domain/monitoring/monitoring.service';
import { RetrainingService } from '../domain/monitoring/retraining.service';
import { SqlRetrainingRepository } from '../infra/db/monitoring/retraining.repository';
import { SqlMonitorRepository } from '../infra/db/monitoring/monitor.repository';
import { SqlTrafficReader } from '../infra/db/monitoring/traffic-reader';
import { SnapshotReferenceReader } from '../infra/datasets/reference-reader';
import { PredictionService } from '../domain/serving/prediction.service';
import { DeploymentService } from '../domain/serving/deployment.service';
import { CanaryController } from '../domain/serving/canary-controller';
import { AutoscalingService } from '../domain/serving/autoscaling.service';
import { ServingRoutes } from '../domain/serving/serving-routes';
import { DeploymentEvents } from '../domain/serving/deployment-events';
import { RedisOutcomeStore } from '../infra/redis/outcome-store';
import { SqlDeploymentRepository } from '../infra/db/serving/deployment.repository';
import { SqlPredictionLog } from '../infra/db/serving/prediction-log';
import { SqlDeadLetterStore } from '../infra/db/dead-letters';
import { DeadLetterService } from '../domain/shared/dead-letter';
import { AlertKind } from '../domain/monitoring/monitor';
import { type Clock } from '../domain/shared/clock';
import { type Database } from '../infra/db/data-source';
import { ambientDataSource, SqlUnitOfWork } from '../infra/db/ambient-transaction';
import { TypeOrmApiKeyRepository } from '../infra/db/repositories/api-key.repository';
import { TypeOrmRunnerRepository } from '../infra/db/repositories/runner.repository';
import { SqlDatasetRepository } from '../infra/db/features/dataset.repository';
import { SqlFeatureRegistryRepository } from '../infra/db/features/feature-registry.repository';
import { PostgresOfflineStore } from '../infra/db/features/offline-store';
import { ArrowDatasetEncoder } from '../infra/datasets/arrow-encoder';
import { ArtifactTableReader } from '../infra/datasets/table-files';
import { RedisOnlineStore } from '../infra/redis/online-store';
import { readStreamLag } from '../infra/redis/feature-stream';
import { RedisRunQueue } from '../infra/redis/run-queue';
import { RedisKeyEpoch } from '../infra/redis/key-epoch';
import { SqlTrainingRunRepository } from '../infra/db/training/training-run.repository';
import { type RedisKeyTracker } from '../infra/redis/key-tracker';
import { type RedisClient } from '../infra/redis/redis-client';

/** The domain services, wired to their adapters. Resolvers see only this. */
export interface Services {
  apiKeys: ApiKeyService;
  runners: RunnerService;
  featureRegistry: FeatureRegistryService;
  ingestion: FeatureIngestionService;
  backfill: FeatureBackfillService;
  onlineFeatures: OnlineFeatureService;
  quarantine: QuarantineService;
  compaction: OfflineCompactionService;
  datasets: DatasetService;
  training: TrainingService;
  runExecution: RunExecutionService;
  studies: StudyService;
  /** registerBest and the Optuna journal export of a study. */
  studyResults: StudyResultsService;
  registry: ModelRegistryService;
  lineage: LineageService;
  serving: PredictionService;
  deployments: DeploymentService;
  canary: CanaryController;
  autoscaler: AutoscalingService;
  routes: ServingRoutes;
  predictionLog: SqlPredictionLog;
  monitoring: MonitoringService;
  retraining: RetrainingService;
  deadLetters: DeadLetterService;
  /** Stops background writers and releases model sessions (after the HTTP server closed). */
  close(): Promise<void>;
  /** Consumer lag of every feature source stream. */
  streamLag(): Promise<StreamLag[]>;
  artifacts: ArtifactStore;
  events: EventBus;
  clock: Clock;
}

export function createServices(deps: {
  db: Database;
  redis: RedisClient;
  /** Client-side caching of online stamps and the key epoch (null: every read asks Redis). */
  keyTracker?: RedisKeyTracker | null;
  redisPrefix: string;
  events: EventBus;
  artifacts: ArtifactStore;
  clock: Clock;
  trainingLeaseMs: number;
  /** This process among the fleet's (leases, builds it holds). */
  processId: string;
  datasetBuildTtlMs: number;
  /** The DuckDB join engine's settings; null: none (every build on the evaluator). */
  datasetDuckDb?: {
    minRows: number;
    memoryLimitMb: number;
    groupBytes: number;
    tempDir: string;
  } | null;
}): Services {
  // Repositories join the ambient transaction of a UnitOfWork (docs/adr/0027).
  const ds = ambientDataSource(deps.db.dataSource);
  const uow = new SqlUnitOfWork(deps.db.dataSource);
  const offline = new PostgresOfflineStore(deps.db, deps.artifacts);
  const online = new RedisOnlineStore(
    deps.redis,
    deps.redisPrefix,
    undefined,
    deps.keyTracker ?? null,
  );
  const featureRegistry = new FeatureRegistryService(
    new SqlFeatureRegistryRepository(ds),
    deps.clock,
  );
  const ingestion = new FeatureIngestionService(offline, online, deps.clock);
  const tableFiles = new ArtifactTableReader(deps.artifacts);
  const runQueue = new RedisRunQueue(deps.redis, deps.redisPrefix);
  const runners = new RunnerService(
    new TypeOrmRunnerRepository(ds),
    deps.events,
    deps.clock,
    runQueue,
    uow,
  );
  const datasets = new DatasetService(
    featureRegistry,
    offline,
    new SqlDatasetRepository(ds),
    deps.artifacts,
    new ArrowDatasetEncoder(),
    deps.events,
    deps.clock,
    tableFiles,
    deps.processId,
    deps.datasetBuildTtlMs,
    uow,
    deps.datasetDuckDb
      ? {
          sql: new DuckDbPointInTimeEngine(offline, deps.artifacts, deps.datasetDuckDb),
          autoMinRows: deps.datasetDuckDb.minRows,
        }
      : undefined,
  );
  const runEvents = new RunEvents(deps.events, deps.clock);
  const trainingRuns = new SqlTrainingRunRepository(ds);
  const training = new TrainingService(
    trainingRuns,
    runQueue,
    datasets,
    runEvents,
    deps.clock,
    uow,
  );
  const runExecution = new RunExecutionService(
    trainingRuns,
    runQueue,
    runners,
    datasets,
    deps.artifacts,
    runEvents,
    deps.clock,
    deps.trainingLeaseMs,
    uow,
  );
  const registry = new ModelRegistryService({
    repo: new SqlModelRegistryRepository(ds, deps.clock),
    inspector: new OnnxModelInspector(),
    artifacts: deps.artifacts,
    runs: training,
    datasets,
    events: deps.events,
    uow,
    clock: deps.clock,
  });
  const onlineFeatures = new OnlineFeatureService(featureRegistry, online, deps.clock);
  const deadLetterStore = new SqlDeadLetterStore(ds);
  const predictionLog = new SqlPredictionLog(ds, deadLetterStore);
  const runner = new OnnxModelRunner((v) => registry.modelBytes(v));
  runExecution.onRegistrableRun((run) =>
    registry.registerFromRun(null, run.registerAs as string, run.id),
  );
  const deployments = new SqlDeploymentRepository(ds);
  // Request outcomes of the whole fleet: what the canary, A/B and autoscaler judge.
  const outcomes = new RedisOutcomeStore(deps.redis, deps.redisPrefix);
  const routes = new ServingRoutes(deployments, registry, deps.events);
  const deploymentEvents = new DeploymentEvents(deps.events, deps.clock);
  const serving = new PredictionService(
    deployments,
    routes,
    featureRegistry,
    onlineFeatures,
    runner,
    predictionLog,
    outcomes,
    deps.clock,
  );
  const deploymentService = new DeploymentService(
    deployments,
    registry,
    routes,
    runner,
    predictionLog,
    outcomes,
    deploymentEvents,
    deps.clock,
  );
  const traffic = new SqlTrafficReader(ds, () => predictionLog.flush());
  const snapshots = new SnapshotReferenceReader(datasets, deps.artifacts);
  const monitoring = new MonitoringService(
    new SqlMonitorRepository(ds),
    deployments,
    registry,
    traffic,
    snapshots,
    deps.events,
    deps.clock,
    uow,
  );
  const retraining = new RetrainingService({
    repo: new SqlRetrainingRepository(ds, deps.clock),
    registry,
    monitoring,
    traffic,
    snapshots,
    datasets,
    training,
    shadowFigures: async (deploymentId, versionId, since) => {
      const found = (await predictionLog.compareShadow(deploymentId, since)).find(
        (c) => c.shadowVersionId === versionId,
      );
      return found ?? { pairs: 0, meanAbsDiff: 0, agreement: 0 };
    },
    deploymentOfMonitor: async (monitorId) => {
      const m = await monitoring.monitor(monitorId);
      return m ? ((await deployments.findByIds([m.deploymentId]))[0] ?? null) : null;
    },
    clock: deps.clock,
  });
  monitoring.onAlert((e) => retraining.onAlert(e).then(() => undefined));
  const deadPerVersion = new Map<string, number>();
  predictionLog.onDeadLetters((rows, error) => {
    for (const r of rows) {
      const n = (deadPerVersion.get(r.versionId) ?? 0) + 1;
      deadPerVersion.set(r.versionId, n);
      void monitoring
        .raiseUnmonitored(
          r.versionId,
          AlertKind.DEAD_LETTER,
          `${n} prediction log row(s) of this version could not be stored and were dead-lettered (see deadLetters): ${error.slice(0, 200)}`,
        )
        .catch(() => undefined);
    }
  });
  const apiKeys = new ApiKeyService(
    new TypeOrmApiKeyRepository(ds),
    new RedisKeyEpoch(deps.redis, deps.redisPrefix, deps.keyTracker ?? null),
    deps.events,
    deps.clock,
    uow,
  );
  const studies = new StudyService(
    new SqlStudyRepository(ds),
    training,
    datasets,
    deps.clock,
    deps.events,
    uow,
  );
  return {
    apiKeys,
    runners,
    featureRegistry,
    ingestion,
    backfill: new FeatureBackfillService(
      featureRegistry,
      ingestion,
      offline,
      online,
      tableFiles,
      deps.clock,
    ),
    onlineFeatures,
    quarantine: new QuarantineService(offline, featureRegistry, ingestion, deps.clock),
    compaction: new OfflineCompactionService(featureRegistry, offline),
    datasets,
    training,
    runExecution,
    studies,
    studyResults: new StudyResultsService({
      studies,
      runs: training,
      registry,
      registrations: new SqlStudyRegistrations(ds),
    }),
    registry,
    lineage: new LineageService(new SqlLineageRepository(ds)),
    serving,
    deployments: deploymentService,
    canary: new CanaryController(
      deployments,
      registry,
      routes,
      outcomes,
      deploymentEvents,
      uow,
      deps.clock,
    ),
    autoscaler: new AutoscalingService(
      deployments,
      routes,
      outcomes,
      deploymentEvents,
      uow,
      deps.clock,
      () => deploymentService.reportPressure(),
    ),
    routes,
    predictionLog,
    monitoring,
    retraining,
    deadLetters: new DeadLetterService(deadLetterStore),
    close: async () => {
      apiKeys.close();
      await outcomes.flush().catch(() => undefined);
      outcomes.close();
      await predictionLog.close();
      await runner.close();
    },
    streamLag: async () =>
      readStreamLag(deps.redis, deps.redisPrefix, await featureRegistry.allSources()),
    artifacts: deps.artifacts,
    events: deps.events,
    clock: deps.clock,
  };
}
