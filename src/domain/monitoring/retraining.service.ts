import { failpoint } from '../shared/failpoints';
import { type Principal } from '../auth/api-key';
import { Role } from '../auth/role';
import { type DatasetSnapshot, DatasetStatus, type SpineRow } from '../features/dataset';
import { type Gate, inputFeatures, ModelState, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { type Clock } from '../shared/clock';
import { type Cursor, MAX_PAGE_SIZE } from '../shared/pagination';
import { DomainError, InvalidInputError } from '../shared/domain-error';
import { RunStatus, TrainerKind, type TrainingRun } from '../training/training-run';
import { type SubmitRunInput } from '../training/training.service';
import {
  type Alert,
  type AlertEvent,
  AlertKind,
  MonitoringErrorCode,
  type ReferenceReader,
  type TrafficReader,
} from './monitor';
import { type MonitoringService } from './monitoring.service';
import {
  dataProblems,
  DEFAULT_RETRAINING_POLICY,
  FINISHED,
  type Retraining,
  type RetrainingPolicy,
  retrainingPolicyProblem,
  RetrainingStatus,
} from './retraining';

export interface RetrainingRepository {
  policy(modelId: string): Promise<RetrainingPolicy | null>;
  setPolicy(modelId: string, policy: RetrainingPolicy): Promise<void>;
  /** Records a TRIGGERED retraining, or returns null when the model already has an open one. */
  create(
    r: Pick<
      Retraining,
      'modelId' | 'deploymentId' | 'alertId' | 'championId' | 'cause' | 'policy' | 'windowEnd'
    >,
    detail: string,
  ): Promise<Retraining | null>;
  /**
   * Moves it from `from` to `to` and appends the step to its timeline, only if it is still in
   * `from` (compare-and-set); null when another pass moved it first.
   */
  advance(
    id: string,
    from: RetrainingStatus,
    to: RetrainingStatus,
    detail: string,
    patch?: Partial<
      Pick<Retraining, 'trainDatasetId' | 'holdoutDatasetId' | 'runId' | 'challengerId'>
    >,
  ): Promise<Retraining | null>;
  find(id: string): Promise<Retraining | null>;
  active(): Promise<Retraining[]>;
  latestOf(modelId: string): Promise<Retraining | null>;
  ofModel(modelId: string): Promise<Retraining[]>;
}

/** The parts of other services a retraining drives. */
export interface RetrainingDeps {
  repo: RetrainingRepository;
  registry: ModelRegistryService;
  monitoring: MonitoringService;
  traffic: TrafficReader;
  snapshots: ReferenceReader;
  datasets: {
    build(input: {
      name: string;
      featureRefs: readonly string[];
      spine: SpineRow[];
      idempotencyKey: string;
    }): Promise<{
      snapshot: DatasetSnapshot;
    }>;
    byIds(ids: readonly string[]): Promise<DatasetSnapshot[]>;
  };
  training: {
    submit(input: SubmitRunInput): Promise<TrainingRun>;
    get(id: string): Promise<TrainingRun>;
  };
  /** How the challenger's shadow scores compared with the answers given since `since`. */
  shadowFigures(
    deploymentId: string,
    versionId: string,
    since: Date,
  ): Promise<{ pairs: number; meanAbsDiff: number; agreement: number }>;
  /** The deployment a monitor watches, and that deployment's endpoint. */
  deploymentOfMonitor(monitorId: string): Promise<{ id: string; endpoint: string } | null>;
  clock: Clock;
}

/** The retraining loop acts as this principal in the registry's history. */
const SYSTEM: Principal = { keyId: 'system', name: 'retraining policy', role: Role.ADMIN };

/**
 * Closes the loop: an alert the model's policy names starts a retraining — a fresh
 * point-in-time snapshot with the champion's feature refs, spined by the labelled predictions
 * of the data window (the newest share held out), validated before anything trains (bad data
 * stops it and raises a DATA_VALIDATION alert), a run with the champion's trainer and
 * hyperparameters registering the challenger, which then goes through the registry's own
 * path: validated on the held-out snapshot, STAGING behind the model's gates (the policy adds
 * AUC ≥ champion − margin), SHADOW for the policy's time, CANARY, where the canary
 * controller promotes or rolls it back. `advance` moves every open retraining one step when
 * it can; each step is on the retraining's timeline, each version move on modelEvents, and
 * lineage links the alert to the retraining, its snapshots and run, and so to the version.
 */
export class RetrainingService {
  constructor(private readonly d: RetrainingDeps) {}

  async setPolicy(
    model: string,
    policy: Partial<RetrainingPolicy>,
    minAucVsChampion: number | null,
  ): Promise<RetrainingPolicy> {
    const m = await this.d.registry.model(model);
    const next: RetrainingPolicy = {
      ...DEFAULT_RETRAINING_POLICY,
      ...((await this.d.repo.policy(m.id)) ?? {}),
      ...policy,
    };
    const problem = retrainingPolicyProblem(next);
    if (problem)
      throw new InvalidInputError(MonitoringErrorCode.INVALID_MONITOR, `policy: ${problem}`);
    if (minAucVsChampion !== null) {
      // The champion/challenger gate is the registry's own AUC_VS_PRODUCTION gate into
      // STAGING, so hand-made promotions are held to it too.
      const gate: Gate = {
        kind: 'AUC_VS_PRODUCTION',
        into: ModelState.STAGING,
        threshold: -minAucVsChampion,
      };
      await this.d.registry.setGates(model, [
        ...m.gates.filter((g) => !(g.kind === gate.kind && g.into === gate.into)),
        gate,
      ]);
    }
    await this.d.repo.setPolicy(m.id, next);
    return next;
  }

  async policyOf(model: string): Promise<RetrainingPolicy | null> {
    return this.d.repo.policy((await this.d.registry.model(model)).id);
  }

  /** One retraining by its id (null when there is none). */
  retraining(id: string): Promise<Retraining | null> {
    return this.d.repo.find(id);
  }

  async retrainingsOf(model: string): Promise<Retraining[]> {
    return this.d.repo.ofModel((await this.d.registry.model(model)).id);
  }

  /** Called with every alert opened: starts a retraining when the model's policy says so. */
  onAlert(e: AlertEvent): Promise<Retraining | null> {
    return this.consider(e.alert);
  }

  /**
   * Moves every open retraining on as far as it can go now. First, alerts still open (not
   * acknowledged) that came during a cool-down or another retraining start one once they
   * may: a degraded model whose alert stays open is not left alone for good.
   */
  async advance(): Promise<Retraining[]> {
    for (let after: Cursor | undefined; ;) {
      const page = await this.d.monitoring.alerts(
        { openOnly: true },
        { limit: MAX_PAGE_SIZE, after, backward: false },
      );
      for (const a of page.items) if (!a.acknowledgedAt) await this.consider(a);
      const last = page.items.at(-1);
      if (!page.hasNextPage || !last) break;
      after = { createdAt: last.createdAt, id: last.id };
    }
    const out: Retraining[] = [];
    for (const r of await this.d.repo.active()) out.push(await this.drive(r));
    return out;
  }

  /**
   * Takes the retraining's steps until one has to wait. Each step's side effects are
   * idempotent (keys derived from the retraining, versions moved only from where they are),
   * and its status moves by compare-and-set: a step retried after a crash, or raced by
   * another process, finds what it did, never does it twice. A step that throws is tried
   * again on the next pass; only a domain refusal ends the retraining as FAILED.
   */
  private async drive(r: Retraining): Promise<Retraining> {
    let current = r;
    for (let guard = 0; guard < 8; guard++) {
      let next: Retraining | null;
      try {
        next = await this.step(current);
      } catch (e) {
        if (!(e instanceof DomainError) || e.retryable) return current;
        next = await this.d.repo.advance(
          current.id,
          current.status,
          RetrainingStatus.FAILED,
          `failed while ${current.status}: ${e.message}`,
        );
      }
      // Null: waiting, or another pass moved it; its record says which.
      if (!next) return (await this.d.repo.find(current.id)) ?? current;
      if (next.status === current.status) return next;
      current = next;
    }
    return current;
  }

  /**
   * Starts a retraining for an alert on the production version when the policy's triggers
   * name its kind, none is running, and the last one began at least a cool-down ago (an alert
   * still open after a rejected retraining is answered again then, with more data).
   */
  private async consider(a: Alert): Promise<Retraining | null> {
    if (!a.monitorId || a.kind === AlertKind.DATA_VALIDATION) return null;
    const [champion] = await this.d.registry.versionsByIds([a.versionId]);
    // Only the version in production is retrained (a canary's troubles are the controller's).
    if (champion?.state !== ModelState.PRODUCTION) return null;
    const policy = await this.d.repo.policy(champion.modelId);
    if (!policy || !policy.triggers.includes(a.kind)) return null;
    const deployment = await this.d.deploymentOfMonitor(a.monitorId);
    if (!deployment) return null;
    const last = await this.d.repo.latestOf(champion.modelId);
    const now = this.d.clock.now();
    if (last && !FINISHED.has(last.status)) return null; // one at a time
    if (last && now.getTime() - last.createdAt.getTime() < policy.cooldownMs) return null;
    const cause = `${a.kind} alert: ${a.summary}`;
    // The database keeps it to one open retraining per model, whoever races to start one.
    const r = await this.d.repo.create(
      {
        modelId: champion.modelId,
        deploymentId: deployment.id,
        alertId: a.id,
        championId: champion.id,
        cause,
        policy,
        windowEnd: now,
      },
      `triggered by ${cause}`,
    );
    return r ? this.drive(r) : null;
  }

  private async step(r: Retraining): Promise<Retraining | null> {
    const [champion] = await this.d.registry.versionsByIds([r.championId]);
    switch (r.status) {
      case RetrainingStatus.TRIGGERED: {
        const to = r.windowEnd;
        const spine = (
          await this.d.traffic.labelledSpine(
            r.deploymentId,
            new Date(to.getTime() - r.policy.dataWindowMs),
            to,
          )
        ).sort((x, y) => x.ts - y.ts);
        if (spine.length < 2)
          return this.stopForData(r, champion, [
            `${spine.length} labelled predictions with an entity in the data window`,
          ]);
        const cut = Math.max(
          1,
          Math.min(spine.length - 1, Math.round(spine.length * (1 - r.policy.holdoutShare))),
        );
        const refs = inputFeatures(champion);
        const name = `${champion.modelName}-retrain-${to.toISOString().replace(/[:.]/g, '-')}`;
        const train = await this.d.datasets.build({
          name,
          featureRefs: refs,
          spine: spine.slice(0, cut),
          idempotencyKey: `retraining:${r.id}:train`,
        });
        const holdout = await this.d.datasets.build({
          name: `${name}-holdout`,
          featureRefs: refs,
          spine: spine.slice(cut),
          idempotencyKey: `retraining:${r.id}:holdout`,
        });
        failpoint('retraining:TRIGGERED');
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.TRIGGERED,
          RetrainingStatus.BUILDING,
          `building ${train.snapshot.name} (${train.snapshot.rowCount} rows) and its held-out ${holdout.snapshot.name} (${holdout.snapshot.rowCount} newest rows) from labelled traffic`,
          { trainDatasetId: train.snapshot.id, holdoutDatasetId: holdout.snapshot.id },
        );
      }
      case RetrainingStatus.BUILDING: {
        const sets = await this.d.datasets.byIds([
          r.trainDatasetId as string,
          r.holdoutDatasetId as string,
        ]);
        if (sets.some((s) => s.status === DatasetStatus.FAILED))
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.FAILED,
            'a snapshot failed to build',
          );
        if (sets.length < 2 || sets.some((s) => s.status !== DatasetStatus.READY)) return null;
        const profile = await this.d.snapshots.profile(r.trainDatasetId as string);
        const problems = dataProblems(profile, r.policy.validation);
        if (problems.length) return this.stopForData(r, champion, problems);
        const trainer = champion.trainer;
        if (!trainer || trainer.kind !== (TrainerKind.BUILTIN as string))
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.FAILED,
            `${champion.modelName}@${champion.version} was not trained by a built-in trainer; it cannot be retrained automatically`,
          );
        const run = await this.d.training.submit({
          experiment: `${champion.modelName}-retraining`,
          builtinTrainer: trainer.name,
          datasetId: r.trainDatasetId,
          hyperparameters: champion.hyperparameters,
          registerAs: champion.modelName,
          idempotencyKey: `retraining:${r.id}:run`,
        });
        failpoint('retraining:BUILDING');
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.BUILDING,
          RetrainingStatus.TRAINING,
          `data valid (${profile.rows} rows, ${profile.positives} positive); run ${run.id} submitted with ${trainer.name} and @${champion.version}'s hyperparameters`,
          { runId: run.id },
        );
      }
      case RetrainingStatus.TRAINING: {
        const run = await this.d.training.get(r.runId as string);
        if (run.status === RunStatus.FAILED || run.status === RunStatus.CANCELLED)
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.FAILED,
            `run ${run.id} ${run.status}: ${run.error ?? ''}`,
          );
        if (run.status !== RunStatus.SUCCEEDED || !run.modelVersionId) return null;
        const challenger = run.modelVersionId;
        // Each move is taken only from where the version is: after a crash half way, the
        // moves already made are recognised and the rest taken.
        let v = (await this.d.registry.versionsByIds([challenger]))[0];
        if (v.state === ModelState.REGISTERED)
          v = await this.d.registry.validate(SYSTEM, challenger, r.holdoutDatasetId as string);
        if (v.state === ModelState.VALIDATED) {
          try {
            v = await this.d.registry.transition(
              SYSTEM,
              challenger,
              ModelState.STAGING,
              `retraining ${r.id}: challenger of @${champion.version}`,
            );
          } catch (e) {
            if (e instanceof DomainError && !e.retryable)
              return this.d.repo.advance(
                r.id,
                r.status,
                RetrainingStatus.REJECTED,
                `@${v.version} stays out: ${e.message}`,
                { challengerId: challenger },
              );
            throw e;
          }
        }
        if (v.state === ModelState.STAGING)
          v = await this.d.registry.transition(
            SYSTEM,
            challenger,
            ModelState.SHADOW,
            `retraining ${r.id}: shadowing @${champion.version}`,
          );
        if (v.state !== ModelState.SHADOW)
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.FAILED,
            `@${v.version} is ${v.state}, not on its way to SHADOW`,
            { challengerId: challenger },
          );
        failpoint('retraining:TRAINING');
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.TRAINING,
          RetrainingStatus.SHADOW,
          `@${v.version} passed the gates on the held-out snapshot; it shadows @${champion.version} for ${r.policy.shadowMs} ms`,
          { challengerId: challenger },
        );
      }
      case RetrainingStatus.SHADOW: {
        const since = r.updatedAt.getTime();
        if (this.d.clock.now().getTime() - since < r.policy.shadowMs) return null;
        const shadow = await this.d.shadowFigures(
          r.deploymentId,
          r.challengerId as string,
          r.updatedAt,
        );
        const compared = shadow.pairs
          ? `shadow: ${shadow.pairs} requests scored by both, mean |Δ| ${shadow.meanAbsDiff.toFixed(4)}, agreement ${(shadow.agreement * 100).toFixed(1)}%`
          : 'shadow: no requests scored by both';
        let [v] = await this.d.registry.versionsByIds([r.challengerId as string]);
        if (v.state === ModelState.SHADOW)
          v = await this.d.registry.transition(
            SYSTEM,
            v.id,
            ModelState.CANARY,
            `retraining ${r.id}: shadow phase over (${compared})`,
          );
        failpoint('retraining:SHADOW');
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.SHADOW,
          RetrainingStatus.CANARY,
          `${compared}; @${v.version} is the CANARY, the canary controller steps it up or rolls it back`,
        );
      }
      case RetrainingStatus.CANARY: {
        const [v] = await this.d.registry.versionsByIds([r.challengerId as string]);
        if (v.state === ModelState.PRODUCTION)
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.PROMOTED,
            `@${v.version} is in PRODUCTION`,
          );
        if (v.state === ModelState.ROLLED_BACK || v.state === ModelState.ARCHIVED)
          return this.d.repo.advance(
            r.id,
            r.status,
            RetrainingStatus.REJECTED,
            `@${v.version} was ${v.state}`,
          );
        return null;
      }
      default:
        return null;
    }
  }

  private async stopForData(
    r: Retraining,
    champion: ModelVersion,
    problems: string[],
  ): Promise<Retraining | null> {
    const summary = `retraining of ${champion.modelName} stopped, the data failed validation: ${problems.join('; ')}`;
    // One open alert per version and kind: raising it again on a retry changes nothing.
    await this.d.monitoring.raiseUnmonitored(champion.id, AlertKind.DATA_VALIDATION, summary);
    return this.d.repo.advance(r.id, r.status, RetrainingStatus.STOPPED_BAD_DATA, summary);
  }
}
