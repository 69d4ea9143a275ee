import { ArtifactIntegrityError, ArtifactNotFoundError } from '../artifacts/artifact-errors';
import { type ArtifactStore } from '../artifacts/artifact-store';
import { type Principal } from '../auth/api-key';
import { type EventBus, Topics } from '../events/event-bus';
import { type DatasetSnapshot, DatasetStatus } from '../features/dataset';
import { FeatureType } from '../features/feature-definition';
import { type Clock } from '../shared/clock';
import { type UnitOfWork } from '../shared/unit-of-work';
import {
  ConflictError,
  DomainError,
  ErrorCategory,
  InvalidInputError,
  NotFoundError,
} from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { RunStatus, type TrainingRun } from '../training/training-run';
import { evaluateGates, gateProblem } from './gates';
import {
  canTransition,
  type Evaluation,
  type Gate,
  type Model,
  ModelState,
  MODEL_NAME_RE,
  type ModelVersion,
  RegistryErrorCode,
  signatureMismatch,
  TRANSITIONS,
  type Transition,
} from './model';
import { InvalidOnnxError, type ModelInspector, type ModelRegistryRepository } from './ports';

export interface ModelEvent {
  model: string;
  versionId: string;
  version: number;
  from: ModelState | null;
  to: ModelState;
  actor: string;
  reason: string;
  at: string;
}

export interface RegistryDeps {
  repo: ModelRegistryRepository;
  inspector: ModelInspector;
  artifacts: ArtifactStore;
  runs: { get(id: string): Promise<TrainingRun> };
  datasets: { byIds(ids: readonly string[]): Promise<DatasetSnapshot[]> };
  events: EventBus;
  /** Changes and the events that announce them commit together (the outbox). */
  uow: UnitOfWork;
  clock: Clock;
}

const NUMERIC: ReadonlySet<string> = new Set([
  FeatureType.FLOAT,
  FeatureType.INT,
  FeatureType.BOOL,
]);
const NOT_FEATURES = new Set(['entity_key', 'ts', 'label']);

/** The feature refs a model trained on a snapshot reads, in input column order. */
export function modelFeatureRefs(d: DatasetSnapshot): string[] {
  return d.columns
    .filter((c) => !NOT_FEATURES.has(c.name) && NUMERIC.has(c.type))
    .map((c) => c.name);
}

/**
 * The model registry: versions registered from finished runs (artifact verified and copied
 * before the version exists), promotion through the states of `TRANSITIONS` guarded by
 * gates, rollback, and every transition recorded and published.
 */
export class ModelRegistryService {
  constructor(private readonly d: RegistryDeps) {}

  async registerFromRun(
    actor: Principal | null,
    modelName: string,
    runId: string,
    reason = '',
  ): Promise<ModelVersion> {
    if (!MODEL_NAME_RE.test(modelName))
      throw invalid(`model name must be a lower-case identifier (got "${modelName}")`);
    const run = await this.d.runs.get(runId);
    if (run.status !== RunStatus.SUCCEEDED || !run.model)
      throw new ConflictError(
        RegistryErrorCode.RUN_NOT_REGISTRABLE,
        `Run ${runId} is ${run.status}${run.model ? '' : ' without a model'}: only a SUCCEEDED run with a model can be registered`,
      );
    const already = await this.d.repo.versionOfRun(modelName, run.id);
    if (already) return already;
    let bytes: Uint8Array;
    try {
      bytes = await this.d.artifacts.getBytes(run.model.key, run.model.sha256);
    } catch (e) {
      if (e instanceof ArtifactIntegrityError)
        throw new ConflictError(
          RegistryErrorCode.ARTIFACT_CHECKSUM_MISMATCH,
          `The model file of run ${runId} does not match its recorded SHA-256; nothing was registered`,
          { key: run.model.key, expected: run.model.sha256 },
        );
      throw e;
    }
    const signature = this.signature(bytes);
    const [dataset] = await this.d.datasets.byIds([run.datasetId]);
    const featureRefs = dataset ? modelFeatureRefs(dataset) : [];
    const mismatch = signatureMismatch(signature, featureRefs);
    if (mismatch)
      throw new InvalidInputError(
        RegistryErrorCode.SIGNATURE_MISMATCH,
        `The model's inputs do not match the feature refs of its dataset` +
          (mismatch.missing.length ? `; missing: ${mismatch.missing.join(', ')}` : '') +
          (mismatch.unexpected.length
            ? `; not in the dataset: ${mismatch.unexpected.join(', ')}`
            : '') +
          (mismatch.widthFound !== mismatch.widthExpected
            ? `; input width ${mismatch.widthFound} for ${mismatch.widthExpected} features`
            : ''),
        mismatch,
      );
    // Stored (and verified) under a key of its own before the version exists: never an
    // overwrite of a file that a live version may be serving from.
    const artifact = await this.d.artifacts.put(
      `models/${modelName}/${run.model.sha256.slice(0, 16)}-${globalThis.crypto.randomUUID()}.onnx`,
      bytes,
    );
    if (artifact.sha256 !== run.model.sha256)
      throw new ConflictError(
        RegistryErrorCode.ARTIFACT_CHECKSUM_MISMATCH,
        'The copied model does not match its SHA-256; nothing was registered',
      );
    return this.d.uow.run(async () => {
      const { version, created } = await this.d.repo.insertVersion({
        modelName,
        runId: run.id,
        artifact,
        datasetId: run.datasetId,
        datasetHash: dataset?.contentHash ?? null,
        featureRefs,
        featureViewVersionIds: dataset?.featureViewVersionIds ?? [],
        hyperparameters: run.hyperparameters,
        metrics: run.summary,
        gitCommit: run.gitCommit,
        trainer: { kind: run.trainer.kind, name: run.trainer.name, version: run.trainerVersion },
        signature,
        actor: actorName(actor),
        reason: reason || `registered from run ${run.id}`,
      });
      if (created)
        await this.publish(version, null, ModelState.REGISTERED, actorName(actor), reason);
      return version;
    });
  }

  /**
   * The automatic checks that make a version VALIDATED: its file verifies and loads in the
   * runtime, its signature matches the held-out snapshot's features, and its evaluation on
   * that snapshot (AUC, log loss, p99 latency of single-row calls) is recorded.
   */
  async validate(actor: Principal, versionId: string, datasetId: string): Promise<ModelVersion> {
    const v = await this.version(versionId);
    if (v.state !== ModelState.REGISTERED) throw illegal(v.state, ModelState.VALIDATED);
    const evaluation = await this.evaluate(v, datasetId);
    return this.move(
      actor,
      v,
      ModelState.VALIDATED,
      `automatic checks passed; evaluated on ${datasetId}: AUC ${evaluation.metrics.auc.toFixed(4)}`,
      [],
    );
  }

  /** A promotion (or demotion) by mutation, refused when illegal or when a gate fails. */
  /**
   * `alongside` runs in the move's own transaction once the version has moved (a caller's
   * record of why, and its events): both commit together or neither does.
   */
  async transition(
    actor: Principal,
    versionId: string,
    to: ModelState,
    reason: string,
    alongside?: () => Promise<void>,
  ): Promise<ModelVersion> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const v = await this.version(versionId);
      if (to === ModelState.VALIDATED || !canTransition(v.state, to)) throw illegal(v.state, to);
      const model = (await this.d.repo.findModelsByIds([v.modelId]))[0];
      const gates = model.gates.filter((g) => g.into === to);
      let results: Transition['gates'] = [];
      if (gates.length) {
        const candidate = (await this.d.repo.evaluationsOf([v.id])).get(v.id)?.[0] ?? null;
        if (!candidate)
          throw new ConflictError(
            RegistryErrorCode.NOT_EVALUATED,
            `${v.modelName}@${v.version} has no evaluation for the gates into ${to} to judge`,
          );
        const prodId = model.productionVersionId;
        const production =
          prodId && prodId !== v.id ? await this.evaluationOn(prodId, candidate.datasetId) : null;
        results = evaluateGates(gates, to, candidate, production);
        const failed = results.filter((r) => !r.passed);
        if (failed.length)
          throw new ConflictError(
            RegistryErrorCode.GATE_FAILED,
            `${v.modelName}@${v.version} may not enter ${to}: ${failed.map((f) => `${f.gate.kind} (${f.detail})`).join('; ')}`,
            {
              gates: results.map((r) => ({
                ...r.gate,
                passed: r.passed,
                actual: r.actual,
                required: r.required,
                detail: r.detail,
              })),
            },
          );
      }
      const moved = await this.d.uow.run(async () => {
        const m = await this.d.repo.transition({
          versionId: v.id,
          from: v.state,
          to,
          expectedProductionId: model.productionVersionId,
          actor: actorName(actor),
          reason,
          gates: results,
        });
        if (!m) return null;
        await this.publish(m.version, v.state, to, actorName(actor), reason);
        if (m.replaced)
          await this.publish(
            m.replaced,
            ModelState.PRODUCTION,
            ModelState.ARCHIVED,
            actorName(actor),
            `replaced by ${v.modelName}@${v.version}`,
          );
        if (alongside) await alongside();
        return m;
      });
      if (!moved) continue; // the version or the model's production moved: judge again
      return moved.version;
    }
    throw new DomainError(
      ErrorCategory.UNAVAILABLE,
      'TRANSITION_CONTENDED',
      `${versionId} kept changing while it was being promoted; try again`,
    );
  }

  /** PRODUCTION goes back to the previous production version, in one step. */
  async rollback(actor: Principal, modelName: string, reason: string): Promise<ModelVersion> {
    const model = await this.model(modelName);
    return this.d.uow.run(async () => {
      const r = await this.d.repo.rollback(model.id, actorName(actor), reason);
      if (!r)
        throw new ConflictError(
          RegistryErrorCode.NO_PREVIOUS_PRODUCTION,
          `${modelName} has no previous production version to return to`,
        );
      await this.publish(
        r.rolledBack,
        ModelState.PRODUCTION,
        ModelState.ROLLED_BACK,
        actorName(actor),
        reason,
      );
      await this.publish(
        r.restored,
        ModelState.ARCHIVED,
        ModelState.PRODUCTION,
        actorName(actor),
        `rollback: ${reason}`,
      );
      return r.restored;
    });
  }

  async setGates(modelName: string, gates: Gate[]): Promise<Model> {
    for (const g of gates) {
      const problem = gateProblem(g);
      if (problem)
        throw new InvalidInputError(RegistryErrorCode.INVALID_GATE, problem, { gate: g });
    }
    return this.d.repo.setGates((await this.model(modelName)).id, gates);
  }

  async model(name: string): Promise<Model> {
    const m = await this.d.repo.findModel(name);
    if (!m) throw new NotFoundError(RegistryErrorCode.MODEL_NOT_FOUND, `No model "${name}"`);
    return m;
  }

  listModels(page: PageRequest): Promise<Page<Model>> {
    return this.d.repo.listModels(page);
  }

  modelsByIds(ids: readonly string[]): Promise<Model[]> {
    return this.d.repo.findModelsByIds(ids);
  }

  async version(id: string): Promise<ModelVersion> {
    const [v] = await this.d.repo.findVersions([id]);
    if (!v) throw new NotFoundError(RegistryErrorCode.VERSION_NOT_FOUND, `No model version ${id}`);
    return v;
  }

  versionsByIds(ids: readonly string[]): Promise<ModelVersion[]> {
    return this.d.repo.findVersions(ids);
  }

  versionsOf(modelIds: readonly string[]): Promise<ModelVersion[]> {
    return this.d.repo.versionsOf(modelIds);
  }

  transitionsOf(ids: readonly string[]): Promise<Map<string, Transition[]>> {
    return this.d.repo.transitionsOf(ids);
  }

  evaluationsOf(ids: readonly string[]): Promise<Map<string, Evaluation[]>> {
    return this.d.repo.evaluationsOf(ids);
  }

  /** The version's model file, verified against its SHA-256 (serving loads this). */
  async modelBytes(v: ModelVersion): Promise<Uint8Array> {
    return this.d.artifacts.getBytes(v.artifact.key, v.artifact.sha256);
  }

  /** Reads the version's stored model and checks it against its SHA-256: CONFLICT if not. */
  async verifyModelFile(v: ModelVersion): Promise<void> {
    try {
      await this.modelBytes(v);
    } catch (e) {
      if (e instanceof ArtifactIntegrityError || e instanceof ArtifactNotFoundError)
        throw new ConflictError(
          RegistryErrorCode.ARTIFACT_CHECKSUM_MISMATCH,
          `The model file of ${v.modelName}@${v.version} is ${e instanceof ArtifactNotFoundError ? 'missing' : 'corrupt (its SHA-256 does not match)'}: it cannot be served`,
          { key: v.artifact.key, expected: v.artifact.sha256 },
        );
      throw e;
    }
  }

  private async evaluate(v: ModelVersion, datasetId: string): Promise<Evaluation> {
    const [dataset] = await this.d.datasets.byIds([datasetId]);
    if (!dataset?.artifact || dataset.status !== DatasetStatus.READY)
      throw new NotFoundError(
        RegistryErrorCode.VERSION_NOT_FOUND,
        `No READY dataset snapshot ${datasetId} to evaluate on`,
      );
    const mismatch = signatureMismatch(v.signature, modelFeatureRefs(dataset));
    if (mismatch)
      throw new InvalidInputError(
        RegistryErrorCode.SIGNATURE_MISMATCH,
        `${dataset.name} does not hold the features ${v.modelName}@${v.version} reads`,
        mismatch,
      );
    const bytes = await this.modelBytes(v);
    this.signature(bytes);
    let metrics: Evaluation['metrics'];
    try {
      metrics = await this.d.inspector.evaluate(
        bytes,
        await this.d.artifacts.getBytes(dataset.artifact.key, dataset.artifact.sha256),
      );
    } catch (e) {
      if (e instanceof InvalidOnnxError)
        throw new InvalidInputError(RegistryErrorCode.INVALID_ONNX, e.message);
      throw e;
    }
    const evaluation: Evaluation = { datasetId, metrics, at: this.d.clock.now() };
    await this.d.repo.saveEvaluation(v.id, evaluation);
    return evaluation;
  }

  /** The production version's evaluation on the same snapshot, made now if missing. */
  private async evaluationOn(versionId: string, datasetId: string): Promise<Evaluation> {
    const known = (await this.d.repo.evaluationsOf([versionId]))
      .get(versionId)
      ?.find((e) => e.datasetId === datasetId);
    return known ?? this.evaluate(await this.version(versionId), datasetId);
  }

  private async move(
    actor: Principal,
    v: ModelVersion,
    to: ModelState,
    reason: string,
    gates: Transition['gates'],
  ): Promise<ModelVersion> {
    const model = (await this.d.repo.findModelsByIds([v.modelId]))[0];
    const moved = await this.d.uow.run(async () => {
      const m = await this.d.repo.transition({
        versionId: v.id,
        from: v.state,
        to,
        expectedProductionId: model.productionVersionId,
        actor: actorName(actor),
        reason,
        gates,
      });
      if (m) await this.publish(m.version, v.state, to, actorName(actor), reason);
      return m;
    });
    if (!moved) throw illegal((await this.version(v.id)).state, to);
    return moved.version;
  }

  private signature(bytes: Uint8Array): ModelVersion['signature'] {
    try {
      return this.d.inspector.signature(bytes);
    } catch (e) {
      if (e instanceof InvalidOnnxError)
        throw new InvalidInputError(RegistryErrorCode.INVALID_ONNX, e.message);
      throw e;
    }
  }

  private async publish(
    v: ModelVersion,
    from: ModelState | null,
    to: ModelState,
    actor: string,
    reason: string,
  ): Promise<void> {
    const e: ModelEvent = {
      model: v.modelName,
      versionId: v.id,
      version: v.version,
      from,
      to,
      actor,
      reason,
      at: this.d.clock.now().toISOString(),
    };
    await this.d.events.publish(Topics.models, e);
  }
}

function actorName(actor: Principal | null): string {
  return actor ? `${actor.name} (${actor.role})` : 'system';
}

function invalid(message: string): InvalidInputError {
  return new InvalidInputError(RegistryErrorCode.INVALID_MODEL, message);
}

function illegal(from: ModelState, to: ModelState): ConflictError {
  const allowed = TRANSITIONS[from].filter((s) => s !== ModelState.VALIDATED);
  return new ConflictError(
    RegistryErrorCode.ILLEGAL_TRANSITION,
    `A version in ${from} cannot move to ${to}` +
      (to === ModelState.VALIDATED && from === ModelState.REGISTERED
        ? ': VALIDATED is reached by validateModelVersion'
        : `; allowed from ${from}: ${allowed.join(', ') || 'nothing'}`),
    { from, to, allowed },
  );
}
