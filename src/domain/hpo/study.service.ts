import { type Principal } from '../auth/api-key';
import { type EventBus } from '../events/event-bus';
import { Permission, requirePermission } from '../auth/role';
import { DatasetStatus } from '../features/dataset';
import { type Clock } from '../shared/clock';
import {
  ConflictError,
  DomainError,
  ErrorCategory,
  InvalidInputError,
  NotFoundError,
} from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import {
  builtinTrainer,
  MAX_COMMAND_PARAMS_BYTES,
  validateHyperparameters,
} from '../training/trainers';
import {
  FINISHED,
  MAX_GPUS_PER_RUN,
  type MetricPoint,
  METRIC_NAME_RE,
  RunStatus,
  TrainerKind,
  type TrainerSpec,
  type TrainingRun,
} from '../training/training-run';
import {
  type DatasetBuildRequest,
  type DatasetLookup,
  type SubmitRunInput,
} from '../training/training.service';
import {
  ashaPlan,
  ashaRungs,
  intermediateOf,
  medianVerdict,
  type PrunerInput,
  validatePruner,
} from './pruners';
import { gridAxes, randomValue, SAMPLERS, trialRng } from './samplers';
import { type SearchParamInput, validateSearchSpace } from './search-space';
import {
  Direction,
  experimentOf,
  HpoErrorCode,
  MAX_PARALLELISM,
  MAX_TRIALS,
  PrunerKind,
  SamplerKind,
  type Study,
  STUDY_NAME_RE,
  StudyStatus,
  type Trial,
  TRIAL_FINISHED,
  TrialState,
} from './study';
import {
  isLastEvent,
  type StudyEvent,
  studyEvent,
  StudyEventKind,
  studyTopic,
} from './study-events';
import { type StudyRepository } from './study.repository';

export interface CreateStudyInput {
  name: string;
  /** A built-in trainer, or a command; neither for an ask-and-tell study. */
  builtinTrainer?: string | null;
  command?: { name: string; argv: string[] } | null;
  /** A READY snapshot, or (instead) a training set to build before the first trial. */
  datasetId?: string | null;
  buildDataset?: DatasetBuildRequest | null;
  /** Hyperparameters every trial gets beside the sampled ones. */
  hyperparameters?: Record<string, unknown> | null;
  space: SearchParamInput[];
  objective: { metric: string; direction: Direction };
  sampler?: SamplerKind | null;
  pruner?: PrunerInput | null;
  budget: { trials: number; gpuSeconds?: number | null };
  parallelism?: number | null;
  seed?: number | null;
  gpuCount?: number | null;
}

/** What a study needs of training: trials are runs of the one queue. */
export interface TrialRuns {
  submit(input: SubmitRunInput): Promise<TrainingRun>;
  byIds(ids: readonly string[]): Promise<TrainingRun[]>;
  cancel(id: string): Promise<TrainingRun>;
  /** Every metric point of each run (what pruners judge). */
  metricsOf(runIds: readonly string[]): Promise<Map<string, MetricPoint[]>>;
}

/** How a told trial ended. */
export type TrialOutcome = { value: number } | { pruned: true } | { failed: string };

/**
 * Studies: their creation (every check before anything is stored), the pass that keeps each
 * one's queue trials topped up to its parallelism and records what their runs reached, ask
 * and tell, and cancellation (ADR 0030).
 */
export class StudyService {
  constructor(
    private readonly repo: StudyRepository,
    private readonly runs: TrialRuns,
    private readonly datasets: DatasetLookup,
    private readonly clock: Clock,
    private readonly events: EventBus,
    /** A trial's or study's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {}

  /**
   * The study's progress: its state first, then each trial started, pruned or finished (with
   * the counts and best trial after it), until the study has ended and no trial is open.
   */
  async *progress(id: string): AsyncGenerator<StudyEvent> {
    const live = this.events.subscribe<StudyEvent>(studyTopic(id));
    try {
      await live.ready;
      const study = await this.get(id);
      const now = studyEvent(StudyEventKind.SNAPSHOT, study, await this.repo.trialsOf(id), null);
      yield now;
      if (isLastEvent(now)) return;
      for await (const e of live) {
        yield e;
        if (isLastEvent(e)) return;
      }
    } finally {
      await live.close();
    }
  }

  /** Records a trial's end and publishes it, in one transaction; null when it had ended. */
  private finishTrial(
    id: string,
    end: Parameters<StudyRepository['finishTrial']>[1],
  ): Promise<Trial | null> {
    return this.uow.run(async () => {
      const done = await this.repo.finishTrial(id, end);
      if (done)
        await this.publish(
          done.state === TrialState.PRUNED
            ? StudyEventKind.TRIAL_PRUNED
            : StudyEventKind.TRIAL_FINISHED,
          done.studyId,
          done,
        );
      return done;
    });
  }

  /** A trial's change (paused, promoted) and its event, in one transaction. */
  private changeTrial(
    kind: StudyEventKind,
    change: () => Promise<Trial | null>,
  ): Promise<Trial | null> {
    return this.uow.run(async () => {
      const t = await change();
      if (t) await this.publish(kind, t.studyId, t);
      return t;
    });
  }

  /** Ends the study and publishes it, in one transaction; null when it had ended. */
  private finishStudy(
    id: string,
    status: StudyStatus,
    at: Date,
    error: string | null = null,
  ): Promise<Study | null> {
    return this.uow.run(async () => {
      const done = await this.repo.finishStudy(id, status, at, error);
      if (done) await this.publish(StudyEventKind.STUDY_ENDED, id, null);
      return done;
    });
  }

  /** Publishes an event with the study's state as this transaction sees it. */
  private async publish(kind: StudyEventKind, studyId: string, trial: Trial | null): Promise<void> {
    const [study] = await this.repo.findByIds([studyId]);
    const trials = await this.repo.trialsOf(studyId);
    await this.events.publish(studyTopic(studyId), studyEvent(kind, study, trials, trial));
  }

  /** Records a new trial and publishes its start, inside the caller's transaction. */
  private async insertTrial(t: Parameters<StudyRepository['insertTrial']>[0]): Promise<Trial> {
    const trial = await this.repo.insertTrial(t);
    await this.publish(StudyEventKind.TRIAL_STARTED, trial.studyId, trial);
    return trial;
  }

  async create(input: CreateStudyInput, actor: Principal): Promise<Study> {
    if (!STUDY_NAME_RE.test(input.name))
      throw invalid('name must be 1-60 characters of letters, digits and . _ -', 'name');
    const fixed = input.hyperparameters ?? {};
    if (typeof fixed !== 'object' || Array.isArray(fixed))
      throw invalid('hyperparameters must be a JSON object', 'hyperparameters');
    if (input.builtinTrainer != null && input.command != null)
      throw invalid('Give builtinTrainer or command, not both', 'trainer');
    let trainer: TrainerSpec | null = null;
    let version: string | null = null;
    const builtin = input.builtinTrainer != null ? builtinTrainer(input.builtinTrainer) : null;
    if (input.builtinTrainer != null) {
      if (!builtin)
        throw invalid(`No built-in trainer "${input.builtinTrainer}"`, 'builtinTrainer');
      trainer = { kind: TrainerKind.BUILTIN, name: builtin.name };
      version = builtin.version;
    } else if (input.command != null) {
      requirePermission(actor, Permission.COMMAND_TRAINERS, 'A command trainer');
      const c = input.command;
      if (!/^[a-z][a-z0-9_.-]{0,62}$/.test(c.name))
        throw invalid('command.name must be a lower-case identifier', 'command.name');
      if (c.argv.length === 0 || c.argv.length > 64 || c.argv.some((a) => !a || a.length > 4096))
        throw invalid('command.argv must hold 1 to 64 non-empty arguments', 'command.argv');
      if (JSON.stringify(fixed).length > MAX_COMMAND_PARAMS_BYTES / 2)
        throw invalid('hyperparameters are too large', 'hyperparameters');
      trainer = { kind: TrainerKind.COMMAND, name: c.name, command: [...c.argv] };
    }
    const space = validateSearchSpace(input.space, builtin ?? null, fixed);
    if (builtin) {
      // The fixed values, with a value of each dimension: what every trial will be checked with.
      const rng = trialRng(0, 0);
      validateHyperparameters(builtin, {
        ...fixed,
        ...Object.fromEntries(space.map((p) => [p.name, randomValue(p, rng)])),
      });
    }
    const { metric, direction } = input.objective;
    if (!METRIC_NAME_RE.test(metric))
      throw invalid(
        `objective.metric "${metric}" is not a metric name like val_loss`,
        'objective.metric',
      );
    if (!Object.values(Direction).includes(direction))
      throw invalid('objective.direction must be MINIMIZE or MAXIMIZE', 'objective.direction');
    const sampler = input.sampler ?? SamplerKind.TPE;
    const pruner = validatePruner(input.pruner, {
      hasTrainer: trainer !== null,
      builtin: builtin ?? null,
      fixed,
      space,
    });
    const trials = input.budget.trials;
    if (!Number.isInteger(trials) || trials < 1 || trials > MAX_TRIALS)
      throw invalid(`budget.trials must be an integer from 1 to ${MAX_TRIALS}`, 'budget.trials');
    const gpuSeconds = input.budget.gpuSeconds ?? null;
    if (gpuSeconds !== null && !(Number.isFinite(gpuSeconds) && gpuSeconds > 0))
      throw invalid('budget.gpuSeconds must be a positive number', 'budget.gpuSeconds');
    if (sampler === SamplerKind.GRID) {
      const g = gridAxes(space);
      if ('problem' in g)
        throw invalid(`A GRID sampler cannot search this space: ${g.problem}`, 'sampler');
      const size = g.axes.reduce((n, a) => n * a.length, 1);
      if (trials > size)
        throw invalid(
          `The grid has ${size} points: budget.trials must be at most ${size}`,
          'budget.trials',
        );
    }
    const parallelism = input.parallelism ?? 1;
    if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > MAX_PARALLELISM)
      throw invalid(`parallelism must be an integer from 1 to ${MAX_PARALLELISM}`, 'parallelism');
    const seed = input.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 31 - 1)
      throw invalid('seed must be an integer from 0 to 2^31-1', 'seed');
    const gpuCount = input.gpuCount ?? 0;
    if (!Number.isInteger(gpuCount) || gpuCount < 0 || gpuCount > MAX_GPUS_PER_RUN)
      throw invalid(`gpuCount must be an integer from 0 to ${MAX_GPUS_PER_RUN}`, 'gpuCount');
    const building = input.buildDataset ?? null;
    if (
      trainer === null &&
      (input.datasetId != null || building !== null || gpuCount > 0 || gpuSeconds !== null)
    )
      throw invalid(
        'A study without a trainer is ask-and-tell only: datasetId, buildDataset, gpuCount and budget.gpuSeconds need a trainer',
        'trainer',
      );
    let datasetId = input.datasetId ?? null;
    if (trainer !== null && (datasetId === null) === (building === null))
      throw invalid(
        'A study with a trainer needs datasetId or buildDataset, one of the two',
        'dataset',
      );
    if (building !== null) {
      // Everything else is valid: the name is checked before a build starts for it (a study
      // that loses a race for the name leaves a snapshot nobody tunes, never a half study).
      if (await this.repo.nameTaken(input.name))
        throw new ConflictError(HpoErrorCode.STUDY_EXISTS, `A study named ${input.name} exists`);
      datasetId = (await this.datasets.build(building)).snapshot.id;
    } else if (datasetId !== null) {
      const [d] = await this.datasets.byIds([datasetId]);
      if (!d)
        throw new NotFoundError(HpoErrorCode.INVALID_STUDY, `No dataset snapshot ${datasetId}`);
      if (d.status !== DatasetStatus.READY)
        throw new ConflictError(
          HpoErrorCode.INVALID_STUDY,
          `Dataset snapshot ${d.name} is ${d.status}, not READY`,
        );
    }
    const study = await this.repo.insert({
      name: input.name,
      trainer,
      trainerVersion: version,
      datasetId,
      fixed,
      space,
      objective: { metric, direction },
      sampler,
      pruner,
      budget: { trials, gpuSeconds },
      parallelism,
      seed,
      gpuCount,
    });
    if (!study)
      throw new ConflictError(HpoErrorCode.STUDY_EXISTS, `A study named ${input.name} exists`);
    return study;
  }

  async get(id: string): Promise<Study> {
    const [s] = await this.repo.findByIds([id]);
    if (!s) throw new NotFoundError(HpoErrorCode.STUDY_NOT_FOUND, `No study with id ${id}`);
    return s;
  }

  byIds(ids: readonly string[]): Promise<Study[]> {
    return this.repo.findByIds(ids);
  }

  list(page: PageRequest, filter: { status?: StudyStatus }): Promise<Page<Study>> {
    return this.repo.list(page, filter);
  }

  trials(studyId: string): Promise<Trial[]> {
    return this.repo.trialsOf(studyId);
  }

  trialsOfStudies(studyIds: readonly string[]): Promise<Map<string, Trial[]>> {
    return this.repo.trialsOfStudies(studyIds);
  }

  trialsByIds(ids: readonly string[]): Promise<Trial[]> {
    return this.repo.trialsByIds(ids);
  }

  async trial(id: string): Promise<Trial> {
    const [t] = await this.repo.trialsByIds([id]);
    if (!t) throw new NotFoundError(HpoErrorCode.TRIAL_NOT_FOUND, `No trial with id ${id}`);
    return t;
  }

  /** The study ends CANCELLED; its queued trials leave the queue and its running ones stop. */
  async cancel(id: string): Promise<Study> {
    const done = await this.finishStudy(id, StudyStatus.CANCELLED, this.clock.now());
    if (!done) {
      const s = await this.get(id);
      throw new ConflictError(
        HpoErrorCode.STUDY_FINISHED,
        `Study ${s.name} is already ${s.status}`,
      );
    }
    await this.stopOpenTrials(done);
    return this.get(id);
  }

  /** Cancels the runs of the study's open trials and records the trials CANCELLED. */
  private async stopOpenTrials(study: Study): Promise<void> {
    for (const t of await this.repo.trialsOf(study.id)) {
      if (t.state !== TrialState.RUNNING && t.state !== TrialState.PAUSED) continue;
      // A PAUSED trial's run has ended and was counted when it paused.
      const running = t.state === TrialState.RUNNING && t.runId !== null;
      if (running) await this.runs.cancel(t.runId as string).catch(ignoreConflict);
      await this.finishTrial(t.id, {
        state: TrialState.CANCELLED,
        value: null,
        error: 'the study was cancelled',
        gpuSeconds: running ? await this.gpuSecondsOf(study, t.runId as string) : 0,
        at: this.clock.now(),
      });
    }
  }

  private async gpuSecondsOf(study: Study, runId: string): Promise<number> {
    const [run] = await this.runs.byIds([runId]);
    return run ? deviceSeconds(run, study.gpuCount, this.clock.now()) : 0;
  }

  /**
   * One pass over every open study (a leased loop; safe to run in several processes at once):
   * records the outcome of trials whose run ended, starts trials while the study has fewer
   * than `parallelism` open and budget left, and completes studies whose budget is spent.
   */
  async advance(): Promise<Study[]> {
    const changed: Study[] = [];
    for (const s of await this.repo.open()) {
      const after = await this.advanceStudy(s);
      if (after) changed.push(after);
    }
    return changed;
  }

  /** The study after its pass, when it ended in it. */
  private async advanceStudy(study: Study): Promise<Study | null> {
    if (study.status !== StudyStatus.RUNNING) {
      // Cancelled by a process that died before stopping every trial.
      await this.stopOpenTrials(study);
      return null;
    }
    // An ask-and-tell study has no queue trials: its caller runs every trial it asks for.
    if (study.trainer === null) return null;
    const trials = await this.repo.trialsOf(study.id);
    // Until its first queue trial (asked ones do not count: they need no training set here).
    if (!trials.some((t) => !t.asked)) {
      const waiting = await this.awaitingDataset(study);
      if (waiting !== false) return waiting;
    }
    const open = trials.filter((t) => !t.asked && t.state === TrialState.RUNNING);
    const runs = new Map(
      (await this.runs.byIds(open.flatMap((t) => (t.runId ? [t.runId] : [])))).map((r) => [
        r.id,
        r,
      ]),
    );
    const tracked = await this.track(study, trials, open, runs);
    for (const t of tracked) {
      const run = t.runId ? runs.get(t.runId) : undefined;
      if (!t.runId) await this.submitTrial(study, t);
      else if (run) await this.settle(study, t, run);
    }
    // ASHA: waiting trials in their rung's top go on before new trials take the free slots.
    if (study.pruner.kind === PrunerKind.ASHA) await this.halve(study.id);
    while (await this.startTrial(study));
    return this.completeIfSpent(study.id);
  }

  /**
   * Before its first queue trial, a study that builds its training set waits for it: false
   * once it is READY (a snapshot never leaves READY); null while it builds; the study, ended
   * FAILED, if the build failed.
   */
  private async awaitingDataset(study: Study): Promise<Study | null | false> {
    const [d] = await this.datasets.byIds([study.datasetId as string]);
    if (d?.status === DatasetStatus.READY) return false;
    if (d?.status === DatasetStatus.BUILDING) return null;
    return this.finishStudy(
      study.id,
      StudyStatus.FAILED,
      this.clock.now(),
      `its training set ${d?.name ?? study.datasetId} could not be built${d?.error ? `: ${d.error}` : ''}`,
    );
  }

  /**
   * Brings each open trial's per-epoch objective up to date from its runs' metrics and, under
   * MEDIAN, judges the epochs reported since the last pass: a pruned trial's run is cancelled
   * (it stops at its next checkpoint) and the trial ends PRUNED once the run has stopped. The
   * trials as updated.
   */
  private async track(
    study: Study,
    trials: readonly Trial[],
    open: Trial[],
    runs: Map<string, TrainingRun>,
  ): Promise<Trial[]> {
    const lastEpoch = (t: Trial) => t.intermediate.at(-1)?.epoch ?? 0;
    const stale = open.filter((t) => {
      const run = t.runId ? runs.get(t.runId) : undefined;
      return run && (run.epochsDone > lastEpoch(t) || FINISHED.has(run.status));
    });
    if (stale.length === 0) return open;
    const points = await this.runs.metricsOf(
      stale.flatMap((t) => [...t.pastRunIds, t.runId as string]),
    );
    const completed = trials
      .filter((t) => t.state === TrialState.COMPLETE)
      .map((t) => t.intermediate);
    const updated = new Map<string, Trial>();
    for (const t of stale) {
      const run = runs.get(t.runId as string) as TrainingRun;
      const now = intermediateOf(
        study.objective.metric,
        [...t.pastRunIds, run.id].map((id) => points.get(id) ?? []),
      );
      let after: Trial = { ...t, ...now };
      const reported = (now.intermediate.at(-1)?.epoch ?? 0) > lastEpoch(t);
      await this.uow.run(async () => {
        await this.repo.recordIntermediate(t.id, now.intermediate, now.epochsTrained);
        if (reported) await this.publish(StudyEventKind.TRIAL_REPORTED, study.id, after);
      });
      const pruner = study.pruner;
      if (
        pruner.kind === PrunerKind.MEDIAN &&
        t.prunedAtEpoch === null &&
        !FINISHED.has(run.status)
      ) {
        const verdict = medianVerdict(
          pruner,
          study.objective.direction,
          now.intermediate,
          lastEpoch(t),
          completed,
        );
        if (verdict) after = (await this.repo.markPruned(t.id, verdict)) ?? after;
      }
      updated.set(t.id, after);
    }
    // A pruned trial's run is stopped; asked again on each pass until it is (a crash between).
    for (const t of open) {
      const after = updated.get(t.id) ?? t;
      const run = t.runId ? runs.get(t.runId) : undefined;
      if (
        after.prunedAtEpoch !== null &&
        run &&
        !FINISHED.has(run.status) &&
        !run.cancelRequestedAt
      )
        await this.runs.cancel(run.id).catch(ignoreConflict);
    }
    return open.map((t) => updated.get(t.id) ?? t);
  }

  /**
   * ASHA's step: promotes waiting trials in their rung's top 1/η (each takes a slot of the
   * parallelism; none left, the rest wait for the next pass) and prunes those that can never
   * be promoted.
   */
  private async halve(studyId: string): Promise<void> {
    const study = await this.get(studyId);
    if (study.pruner.kind !== PrunerKind.ASHA || study.status !== StudyStatus.RUNNING) return;
    const trials = (await this.repo.trialsOf(study.id)).filter((t) => !t.asked);
    const rungs = ashaRungs(study.pruner);
    const plan = ashaPlan(
      study.pruner,
      study.objective.direction,
      trials.map((t) => ({ ...t, rung: t.rung ?? 0 })),
      study.budget.trials,
      study.trialsStarted < study.budget.trials &&
        (study.budget.gpuSeconds === null || study.gpuSecondsUsed < study.budget.gpuSeconds),
    );
    for (const id of plan.promote) {
      const t = await this.changeTrial(StudyEventKind.TRIAL_PROMOTED, () =>
        this.repo.promoteTrial(id),
      );
      if (!t) break;
      await this.submitTrial(study, t);
    }
    const byId = new Map(trials.map((t) => [t.id, t]));
    for (const p of plan.prune)
      await this.finishTrial(p.id, {
        state: TrialState.PRUNED,
        value: byId.get(p.id)?.rungValues[p.rung] ?? null,
        error: null,
        gpuSeconds: 0,
        at: this.clock.now(),
        prunedAtEpoch: rungs[p.rung],
      });
  }

  /**
   * Ask: a new trial's parameters, sampled from every trial so far (told ones included), for
   * the caller to run wherever it likes. It counts against the trial budget, not against the
   * parallelism (which bounds the study's share of the GPU queue).
   */
  async ask(studyId: string): Promise<Trial> {
    const study = await this.get(studyId);
    if (study.status !== StudyStatus.RUNNING)
      throw new ConflictError(
        HpoErrorCode.STUDY_FINISHED,
        `Study ${study.name} is ${study.status}`,
      );
    const trial = await this.uow.run(async () => {
      const number = await this.repo.reserveTrial(study.id, false);
      if (number === null) return null;
      return this.insertTrial({
        studyId: study.id,
        number,
        params: await this.sample(study, number),
        asked: true,
        rung: null,
      });
    });
    if (!trial)
      throw new ConflictError(
        HpoErrorCode.BUDGET_SPENT,
        `Study ${study.name} has spent its budget (${study.budget.trials} trials)`,
      );
    return trial;
  }

  /** Tell: how an asked trial ended. Its value is what later samples learn from. */
  async tell(trialId: string, outcome: TrialOutcome): Promise<Trial> {
    const trial = await this.trial(trialId);
    if (!trial.asked)
      throw new ConflictError(
        HpoErrorCode.TRIAL_NOT_ASKED,
        `Trial ${trial.number} runs in the queue: its run reports its outcome`,
      );
    if ('value' in outcome && !Number.isFinite(outcome.value))
      throw new InvalidInputError(HpoErrorCode.INVALID_STUDY, 'value must be a finite number', {
        field: 'value',
      });
    const done = await this.finishTrial(trial.id, {
      state:
        'value' in outcome
          ? TrialState.COMPLETE
          : 'pruned' in outcome
            ? TrialState.PRUNED
            : TrialState.FAILED,
      value: 'value' in outcome ? outcome.value : null,
      error: 'failed' in outcome ? outcome.failed.slice(0, 4096) : null,
      gpuSeconds: 0,
      at: this.clock.now(),
    });
    if (!done)
      throw new ConflictError(
        HpoErrorCode.TRIAL_FINISHED,
        `Trial ${trial.number} has already ended ${(await this.trial(trialId)).state}`,
      );
    await this.completeIfSpent(trial.studyId);
    return done;
  }

  /** Starts one queue trial if the study has room for it; false when it has none. */
  private async startTrial(study: Study): Promise<boolean> {
    const trial = await this.uow.run(async () => {
      const number = await this.repo.reserveTrial(study.id, true);
      if (number === null) return null;
      return this.insertTrial({
        studyId: study.id,
        number,
        params: await this.sample(study, number),
        asked: false,
        rung: study.pruner.kind === PrunerKind.ASHA ? 0 : null,
      });
    });
    if (!trial) return false;
    await this.submitTrial(study, trial);
    return true;
  }

  /**
   * Submits the trial's run. Its idempotency key makes this safe to repeat: a pass that died
   * after recording the trial and before noting its run submits again and gets the same run.
   * Under ASHA the run trains to its rung's epochs; past rung 0 it starts from the checkpoint
   * the trial's previous run left, so it trains only the epochs after it.
   */
  private async submitTrial(study: Study, trial: Trial): Promise<void> {
    const trainer = study.trainer as TrainerSpec;
    const asha = study.pruner.kind === PrunerKind.ASHA ? study.pruner : null;
    const rung = asha ? (trial.rung ?? 0) : 0;
    let run: TrainingRun;
    try {
      run = await this.runs.submit({
        experiment: experimentOf(study.name),
        builtinTrainer: trainer.kind === TrainerKind.BUILTIN ? trainer.name : null,
        command:
          trainer.kind === TrainerKind.COMMAND
            ? { name: trainer.name, argv: trainer.command }
            : null,
        datasetId: study.datasetId,
        hyperparameters: {
          ...study.fixed,
          ...trial.params,
          ...(asha ? { [asha.resourceParam]: ashaRungs(asha)[rung] } : {}),
        },
        gpuCount: study.gpuCount,
        idempotencyKey: rung > 0 ? `hpo-trial-${trial.id}-rung-${rung}` : `hpo-trial-${trial.id}`,
        resumeFrom: rung > 0 ? (trial.pastRunIds.at(-1) ?? null) : null,
      });
    } catch (e) {
      // Refused (the dataset is gone, a value the trainer rejects): the trial failed. Anything
      // else (Redis or Postgres down) leaves it for the next pass to submit again.
      if (!(e instanceof DomainError) || e.retryable || e.category === ErrorCategory.INTERNAL)
        throw e;
      await this.finishTrial(trial.id, {
        state: TrialState.FAILED,
        value: null,
        error: `its run was refused: ${e.message}`,
        gpuSeconds: 0,
        at: this.clock.now(),
      });
      return;
    }
    await this.repo.setTrialRun(trial.id, run.id);
  }

  /**
   * Records what an ended run reached: its final value of the objective's metric. A trial the
   * pruner stopped ends PRUNED with the value it had when judged; under ASHA one below the top
   * rung waits there (PAUSED) with the value it reached.
   */
  private async settle(study: Study, trial: Trial, run: TrainingRun): Promise<void> {
    if (!FINISHED.has(run.status)) return;
    const value = run.summary[study.objective.metric];
    const ok =
      run.status === RunStatus.SUCCEEDED && typeof value === 'number' && Number.isFinite(value);
    const gpuSeconds = deviceSeconds(run, study.gpuCount, this.clock.now());
    if (trial.prunedAtEpoch !== null) {
      await this.finishTrial(trial.id, {
        state: TrialState.PRUNED,
        value: trial.value,
        error: null,
        gpuSeconds,
        at: this.clock.now(),
      });
      return;
    }
    const asha = study.pruner.kind === PrunerKind.ASHA ? study.pruner : null;
    if (ok && asha && (trial.rung ?? 0) < ashaRungs(asha).length - 1) {
      await this.changeTrial(StudyEventKind.TRIAL_PAUSED, () =>
        this.repo.pauseTrial(trial.id, { value, gpuSeconds }),
      );
      return;
    }
    await this.finishTrial(trial.id, {
      state: ok ? TrialState.COMPLETE : TrialState.FAILED,
      value: ok ? value : null,
      error: ok
        ? null
        : run.status === RunStatus.SUCCEEDED
          ? `the run reported no ${study.objective.metric}`
          : `the run ended ${run.status}${run.error ? `: ${run.error}` : ''}`,
      gpuSeconds,
      at: this.clock.now(),
      rungValue: ok && asha ? value : null,
    });
  }

  /** COMPLETED once no more trials can start and none is open. */
  private async completeIfSpent(studyId: string): Promise<Study | null> {
    const study = await this.get(studyId);
    if (study.status !== StudyStatus.RUNNING) return null;
    const spent =
      study.trialsStarted >= study.budget.trials ||
      (study.budget.gpuSeconds !== null && study.gpuSecondsUsed >= study.budget.gpuSeconds);
    if (!spent) return null;
    const open = (await this.repo.trialsOf(studyId)).some((t) => !TRIAL_FINISHED.has(t.state));
    if (open) return null;
    return this.finishStudy(studyId, StudyStatus.COMPLETED, this.clock.now());
  }

  private async sample(study: Study, number: number): Promise<Record<string, unknown>> {
    const history = await this.repo.trialsOf(study.id);
    return SAMPLERS[study.sampler]({
      space: study.space,
      direction: study.objective.direction,
      seed: study.seed,
      number,
      history,
    });
  }
}

/**
 * Device seconds a run used: its wall time times its GPUs, a run without GPUs counting as one
 * device (a CPU slot), so a budget bounds CPU-only studies too.
 */
export function deviceSeconds(run: TrainingRun, gpuCount: number, now: Date): number {
  if (!run.startedAt) return 0;
  const end = run.finishedAt ?? now;
  return (Math.max(0, end.getTime() - run.startedAt.getTime()) / 1000) * Math.max(1, gpuCount);
}

function ignoreConflict(e: unknown): void {
  if (e instanceof ConflictError) return;
  throw e;
}

function invalid(message: string, field: string): InvalidInputError {
  return new InvalidInputError(HpoErrorCode.INVALID_STUDY, message, { field });
}
