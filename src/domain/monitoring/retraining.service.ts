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
  create(
    r: Pick<Retraining, 'modelId' | 'deploymentId' | 'alertId' | 'championId' | 'cause' | 'policy'>,
    detail: string,
  ): Promise<Retraining>;
  /** Moves it on and appends a step to its timeline. */
  advance(
    id: string,
    status: RetrainingStatus,
    detail: string,
    patch?: Partial<
      Pick<Retraining, 'trainDatasetId' | 'holdoutDatasetId' | 'runId' | 'challengerId'>
    >,
  ): Promise<Retraining>;
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
    build(input: { name: string; featureRefs: string[]; spine: SpineRow[] }): Promise<{
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
    for (const r of await this.d.repo.active()) {
      let current = r;
      for (let guard = 0; guard < 6; guard++) {
        const next = await this.step(current).catch((e: unknown) =>
          this.d.repo.advance(
            current.id,
            RetrainingStatus.FAILED,
            `failed while ${current.status}: ${e instanceof Error ? e.message : String(e)}`,
          ),
        );
        if (!next || next.status === current.status) break;
        current = next;
      }
      out.push(current);
    }
    return out;
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
    const now = this.d.clock.now().getTime();
    if (last && !FINISHED.has(last.status)) return null; // one at a time
    if (last && now - last.createdAt.getTime() < policy.cooldownMs) return null;
    return this.start(champion, deployment.id, a.id, `${a.kind} alert: ${a.summary}`, policy);
  }

  private async start(
    champion: ModelVersion,
    deploymentId: string,
    alertId: string | null,
    cause: string,
    policy: RetrainingPolicy,
  ): Promise<Retraining> {
    const r = await this.d.repo.create(
      { modelId: champion.modelId, deploymentId, alertId, championId: champion.id, cause, policy },
      `triggered by ${cause}`,
    );
    const to = this.d.clock.now();
    const spine = (
      await this.d.traffic.labelledSpine(
        deploymentId,
        new Date(to.getTime() - policy.dataWindowMs),
        to,
      )
    ).sort((x, y) => x.ts - y.ts);
    if (spine.length < 2)
      return this.stopForData(r, champion, [
        `${spine.length} labelled predictions with an entity in the data window`,
      ]);
    const cut = Math.max(
      1,
      Math.min(spine.length - 1, Math.round(spine.length * (1 - policy.holdoutShare))),
    );
    const refs = inputFeatures(champion);
    const name = `${champion.modelName}-retrain-${to.toISOString().replace(/[:.]/g, '-')}`;
    const train = await this.d.datasets.build({
      name,
      featureRefs: refs,
      spine: spine.slice(0, cut),
    });
    const holdout = await this.d.datasets.build({
      name: `${name}-holdout`,
      featureRefs: refs,
      spine: spine.slice(cut),
    });
    return this.d.repo.advance(
      r.id,
      RetrainingStatus.BUILDING,
      `building ${train.snapshot.name} (${cut} rows) and its held-out ${holdout.snapshot.name} (${spine.length - cut} newest rows) from labelled traffic`,
      { trainDatasetId: train.snapshot.id, holdoutDatasetId: holdout.snapshot.id },
    );
  }

  private async step(r: Retraining): Promise<Retraining | null> {
    const [champion] = await this.d.registry.versionsByIds([r.championId]);
    switch (r.status) {
      case RetrainingStatus.BUILDING: {
        const sets = await this.d.datasets.byIds([
          r.trainDatasetId as string,
          r.holdoutDatasetId as string,
        ]);
        if (sets.some((s) => s.status === DatasetStatus.FAILED))
          return this.d.repo.advance(r.id, RetrainingStatus.FAILED, 'a snapshot failed to build');
        if (sets.length < 2 || sets.some((s) => s.status !== DatasetStatus.READY)) return null;
        const profile = await this.d.snapshots.profile(r.trainDatasetId as string);
        const problems = dataProblems(profile, r.policy.validation);
        if (problems.length) return this.stopForData(r, champion, problems);
        const trainer = champion.trainer;
        if (!trainer || trainer.kind !== (TrainerKind.BUILTIN as string))
          return this.d.repo.advance(
            r.id,
            RetrainingStatus.FAILED,
            `${champion.modelName}@${champion.version} was not trained by a built-in trainer; it cannot be retrained automatically`,
          );
        const run = await this.d.training.submit({
          experiment: `${champion.modelName}-retraining`,
          builtinTrainer: trainer.name,
          datasetId: r.trainDatasetId,
          hyperparameters: champion.hyperparameters,
          registerAs: champion.modelName,
        });
        return this.d.repo.advance(
          r.id,
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
            RetrainingStatus.FAILED,
            `run ${run.id} ${run.status}: ${run.error ?? ''}`,
          );
        if (run.status !== RunStatus.SUCCEEDED || !run.modelVersionId) return null;
        const challenger = run.modelVersionId;
        const validated = await this.d.registry.validate(
          SYSTEM,
          challenger,
          r.holdoutDatasetId as string,
        );
        try {
          await this.d.registry.transition(
            SYSTEM,
            challenger,
            ModelState.STAGING,
            `retraining ${r.id}: challenger of @${champion.version}`,
          );
        } catch (e) {
          if (e instanceof DomainError)
            return this.d.repo.advance(
              r.id,
              RetrainingStatus.REJECTED,
              `@${validated.version} stays out: ${e.message}`,
              {
                challengerId: challenger,
              },
            );
          throw e;
        }
        await this.d.registry.transition(
          SYSTEM,
          challenger,
          ModelState.SHADOW,
          `retraining ${r.id}: shadowing @${champion.version}`,
        );
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.SHADOW,
          `@${validated.version} passed the gates on the held-out snapshot; it shadows @${champion.version} for ${r.policy.shadowMs} ms`,
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
        const v = await this.d.registry.transition(
          SYSTEM,
          r.challengerId as string,
          ModelState.CANARY,
          `retraining ${r.id}: shadow phase over (${compared})`,
        );
        return this.d.repo.advance(
          r.id,
          RetrainingStatus.CANARY,
          `${compared}; @${v.version} is the CANARY, the canary controller steps it up or rolls it back`,
        );
      }
      case RetrainingStatus.CANARY: {
        const [v] = await this.d.registry.versionsByIds([r.challengerId as string]);
        if (v.state === ModelState.PRODUCTION)
          return this.d.repo.advance(
            r.id,
            RetrainingStatus.PROMOTED,
            `@${v.version} is in PRODUCTION`,
          );
        if (v.state === ModelState.ROLLED_BACK || v.state === ModelState.ARCHIVED)
          return this.d.repo.advance(
            r.id,
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
  ): Promise<Retraining> {
    const summary = `retraining of ${champion.modelName} stopped, the data failed validation: ${problems.join('; ')}`;
    await this.d.monitoring.raiseUnmonitored(champion.id, AlertKind.DATA_VALIDATION, summary);
    return this.d.repo.advance(r.id, RetrainingStatus.STOPPED_BAD_DATA, summary);
  }
}
