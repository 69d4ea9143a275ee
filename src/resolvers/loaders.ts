import DataLoader from 'dataloader';
import { ModelVersionType } from '../schema/registry.types';
import { type ApiKey } from '../domain/auth/api-key';
import { type Runner } from '../domain/runners/runner';
import { type DatasetSnapshot } from '../domain/features/dataset';
import { type FeatureViewVersion } from '../domain/features/feature-definition';
import {
  type CompactionStatus,
  type FeatureEntity,
  type FeatureView,
  type StoredQuarantine,
  type VersionConsumer,
} from '../domain/features/feature-store.ports';
import {
  type HardwareSample,
  type MetricPoint,
  type TrainingRun,
} from '../domain/training/training-run';
import {
  type Evaluation,
  type Model,
  type ModelVersion,
  type Transition,
} from '../domain/registry/model';
import { type Trial } from '../domain/hpo/study';
import { type OpenTableFiles } from '../domain/features/open-table';
import { type Services } from '../app/services';

/**
 * DataLoaders for relation fields, built fresh for every request (and every subscription
 * event) so nothing cached leaks between callers. N parents asking for their children
 * cost one query.
 */
export interface Loaders {
  apiKey: DataLoader<string, ApiKey | null>;
  runner: DataLoader<string, Runner | null>;
  featureEntity: DataLoader<string, FeatureEntity | null>;
  featureView: DataLoader<string, FeatureView | null>;
  featureViewVersion: DataLoader<string, FeatureViewVersion | null>;
  versionsOfView: DataLoader<string, FeatureViewVersion[]>;
  consumersOfVersion: DataLoader<string, VersionConsumer[]>;
  dataset: DataLoader<string, DatasetSnapshot | null>;
  quarantined: DataLoader<string, StoredQuarantine | null>;
  /** By version id. */
  offlineHistory: DataLoader<string, CompactionStatus>;
  /** By version id. */
  offlineTable: DataLoader<string, OpenTableFiles>;
  run: DataLoader<string, TrainingRun | null>;
  /** By run id: 1 for the head of the queue, null when not queued. */
  queuePosition: DataLoader<string, number | null>;
  runMetrics: DataLoader<string, MetricPoint[]>;
  runHardware: DataLoader<string, HardwareSample[]>;
  /** By study id: its trials, by number. */
  studyTrials: DataLoader<string, Trial[]>;
  model: DataLoader<string, Model | null>;
  modelVersion: DataLoader<string, ModelVersion | null>;
  versionsOfModel: DataLoader<string, ModelVersion[]>;
  modelTransitions: DataLoader<string, Transition[]>;
  modelEvaluations: DataLoader<string, Evaluation[]>;
}

/** `cache: false` for subscriptions: a long-lived stream must not serve stale relations. */
export function createLoaders(services: Services, opts: { cache: boolean }): Loaders {
  return {
    apiKey: new DataLoader((ids) => byId(ids, services.apiKeys.byIds(ids)), opts),
    runner: new DataLoader((ids) => byId(ids, services.runners.byIds(ids)), opts),
    featureEntity: new DataLoader(
      (ids) => byId(ids, services.featureRegistry.entitiesByIds(ids)),
      opts,
    ),
    featureView: new DataLoader((ids) => byId(ids, services.featureRegistry.viewsByIds(ids)), opts),
    featureViewVersion: new DataLoader(
      (ids) => byId(ids, services.featureRegistry.versionsByIds(ids)),
      opts,
    ),
    versionsOfView: new DataLoader(async (viewIds) => {
      const all = await services.featureRegistry.versionsOf(viewIds);
      return viewIds.map((id) => all.filter((v) => v.viewId === id));
    }, opts),
    consumersOfVersion: new DataLoader(async (ids) => {
      const m = await services.featureRegistry.consumersOf(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
    dataset: new DataLoader((ids) => byId(ids, services.datasets.byIds(ids)), opts),
    quarantined: new DataLoader((ids) => byId(ids, services.quarantine.byIds(ids)), opts),
    offlineHistory: new DataLoader((ids) => services.compaction.statuses(ids), opts),
    offlineTable: new DataLoader((ids) => services.compaction.openTables(ids), opts),
    run: new DataLoader((ids) => byId(ids, services.training.byIds(ids)), opts),
    queuePosition: new DataLoader((ids) => services.training.queuePositions(ids), opts),
    runMetrics: new DataLoader(async (ids) => {
      const m = await services.training.metricsOf(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
    model: new DataLoader((ids) => byId(ids, services.registry.modelsByIds(ids)), opts),
    modelVersion: new DataLoader((ids) => byId(ids, services.registry.versionsByIds(ids)), opts),
    versionsOfModel: new DataLoader(async (ids) => {
      const all = await services.registry.versionsOf(ids);
      return ids.map((id) => all.filter((v) => v.modelId === id));
    }, opts),
    modelTransitions: new DataLoader(async (ids) => {
      const m = await services.registry.transitionsOf(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
    modelEvaluations: new DataLoader(async (ids) => {
      const m = await services.registry.evaluationsOf(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
    runHardware: new DataLoader(async (ids) => {
      const m = await services.training.hardwareOf(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
    studyTrials: new DataLoader(async (ids) => {
      const m = await services.studies.trialsOfStudies(ids);
      return ids.map((id) => m.get(id) ?? []);
    }, opts),
  };
}

async function byId<T extends { id: string }>(
  ids: readonly string[],
  rows: Promise<T[]>,
): Promise<(T | null)[]> {
  const map = new Map((await rows).map((r) => [r.id, r]));
  return ids.map((id) => map.get(id) ?? null);
}

/** The ModelVersion a field points at by local id (null id or unknown version: null). */
export async function versionField(
  loaders: Loaders,
  localId: string | null | undefined,
): Promise<ModelVersionType | null> {
  if (!localId) return null;
  const v = await loaders.modelVersion.load(localId);
  return v ? ModelVersionType.from(v) : null;
}
