import { GraphQLJSON, GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ashaRungs } from '../domain/hpo/pruners';
import {
  Direction,
  ParamKind,
  type PrunerConfig,
  PrunerKind,
  SamplerKind,
  type SearchParam,
  type Study,
  StudyStatus,
  type Trial,
  TrialState,
} from '../domain/hpo/study';
import { type StudyEvent, StudyEventKind } from '../domain/hpo/study-events';
import { TrainerKind } from '../domain/training/training-run';
import { Connection } from './connection.types';
import { BuildDatasetInput } from './feature.types';
import { Node, toGlobalId } from './node.types';
import { CommandTrainerInput, TrainerType } from './training.types';

registerEnumType(ParamKind, { name: 'SearchParamKind' });
registerEnumType(Direction, { name: 'OptimizationDirection' });
registerEnumType(SamplerKind, {
  name: 'Sampler',
  description: 'RANDOM, GRID (every point once, in a seeded order) or TPE.',
});
registerEnumType(PrunerKind, {
  name: 'Pruner',
  description:
    'NONE; MEDIAN: stop a trial whose best value so far is worse than the median of the completed trials at the same epoch; ASHA: asynchronous successive halving, trials promoted to more epochs resume from their checkpoint.',
});
registerEnumType(StudyStatus, { name: 'StudyStatus' });
registerEnumType(TrialState, { name: 'TrialState' });
registerEnumType(StudyEventKind, { name: 'StudyEventKind' });

@ObjectType('SearchParam', { description: 'One dimension of a search space.' })
export class SearchParamType {
  @Field()
  name!: string;

  @Field(() => ParamKind)
  kind!: ParamKind;

  @Field(() => Float, { nullable: true })
  low!: number | null;

  @Field(() => Float, { nullable: true })
  high!: number | null;

  @Field({ description: 'Sampled on a log scale.' })
  log!: boolean;

  @Field(() => [GraphQLJSON], { nullable: true, description: 'The values of a CATEGORICAL.' })
  choices!: unknown[] | null;

  static from(p: SearchParam): SearchParamType {
    return Object.assign(new SearchParamType(), {
      name: p.name,
      kind: p.kind,
      low: p.kind === ParamKind.CATEGORICAL ? null : p.low,
      high: p.kind === ParamKind.CATEGORICAL ? null : p.high,
      log: p.kind !== ParamKind.CATEGORICAL && p.log,
      choices: p.kind === ParamKind.CATEGORICAL ? p.choices : null,
    });
  }
}

@ObjectType('Objective')
export class ObjectiveType {
  @Field({ description: 'A metric the runs report, like val_loss; its final value counts.' })
  metric!: string;

  @Field(() => Direction)
  direction!: Direction;
}

@ObjectType('StudyPruner', {
  description: 'How trials are stopped early; null settings do not apply.',
})
export class StudyPrunerType {
  @Field(() => PrunerKind)
  kind!: PrunerKind;

  @Field(() => Int, {
    nullable: true,
    description: 'MEDIAN: completed trials before any is judged.',
  })
  startupTrials!: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'MEDIAN: epochs 1 … warmupEpochs are not judged.',
  })
  warmupEpochs!: number | null;

  @Field(() => Int, { nullable: true, description: 'ASHA: the epochs of the first rung.' })
  minResource!: number | null;

  @Field(() => Int, { nullable: true, description: 'ASHA: η; the top 1/η of a rung go on.' })
  reductionFactor!: number | null;

  @Field(() => Int, { nullable: true, description: 'ASHA: the epochs of the top rung.' })
  maxResource!: number | null;

  @Field(() => String, {
    nullable: true,
    description: 'ASHA: the hyperparameter set to each rung’s epochs (epochs; trees for gbdt).',
  })
  resourceParam!: string | null;

  @Field(() => [Int], { nullable: true, description: 'ASHA: the epochs of each rung.' })
  rungs!: number[] | null;

  static from(p: PrunerConfig): StudyPrunerType {
    return Object.assign(new StudyPrunerType(), {
      kind: p.kind,
      startupTrials: p.kind === PrunerKind.MEDIAN ? p.startupTrials : null,
      warmupEpochs: p.kind === PrunerKind.MEDIAN ? p.warmupEpochs : null,
      minResource: p.kind === PrunerKind.ASHA ? p.minResource : null,
      reductionFactor: p.kind === PrunerKind.ASHA ? p.reductionFactor : null,
      maxResource: p.kind === PrunerKind.ASHA ? p.maxResource : null,
      resourceParam: p.kind === PrunerKind.ASHA ? p.resourceParam : null,
      rungs: p.kind === PrunerKind.ASHA ? ashaRungs(p) : null,
    });
  }
}

@ObjectType('IntermediateValue', { description: 'The objective after one epoch.' })
export class IntermediateValueType {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Float)
  value!: number;
}

@ObjectType('StudyBudget')
export class StudyBudgetType {
  @Field(() => Int)
  trials!: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Device seconds: run seconds times GPUs (a run without GPUs counts one).',
  })
  gpuSeconds!: number | null;
}

@ObjectType('Study', {
  implements: Node,
  description: 'A hyperparameter search: trials are training runs of the shared GPU queue.',
})
export class StudyType extends Node {
  localId!: string;
  datasetLocalId!: string | null;
  direction!: Direction;

  @Field()
  name!: string;

  @Field(() => TrainerType, { nullable: true, description: 'Null for an ask-and-tell study.' })
  trainer!: TrainerType | null;

  @Field(() => GraphQLJSONObject, { description: 'Hyperparameters every trial gets.' })
  hyperparameters!: Record<string, unknown>;

  @Field(() => [SearchParamType])
  space!: SearchParamType[];

  @Field(() => ObjectiveType)
  objective!: ObjectiveType;

  @Field(() => SamplerKind)
  sampler!: SamplerKind;

  @Field(() => StudyPrunerType)
  pruner!: StudyPrunerType;

  @Field(() => StudyBudgetType)
  budget!: StudyBudgetType;

  @Field(() => Int, { description: 'Most trials queued or running at once.' })
  parallelism!: number;

  @Field(() => Int)
  seed!: number;

  @Field(() => Int, { description: 'GPUs each trial’s run asks for.' })
  gpuCount!: number;

  @Field(() => StudyStatus)
  status!: StudyStatus;

  @Field(() => Int, { description: 'Trials created so far.' })
  trialsStarted!: number;

  @Field(() => Int, { description: 'Trials of the queue whose run has not ended.' })
  trialsRunning!: number;

  @Field(() => Float)
  gpuSecondsUsed!: number;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Why it ended FAILED.' })
  error!: string | null;

  static from(s: Study): StudyType {
    const t = new StudyType();
    t.id = toGlobalId('Study', s.id);
    t.localId = s.id;
    t.datasetLocalId = s.datasetId;
    t.direction = s.objective.direction;
    t.name = s.name;
    t.trainer = s.trainer
      ? Object.assign(new TrainerType(), {
          kind: s.trainer.kind,
          name: s.trainer.name,
          version: s.trainerVersion,
          command: s.trainer.kind === TrainerKind.COMMAND ? s.trainer.command : null,
        })
      : null;
    t.hyperparameters = s.fixed;
    t.space = s.space.map(SearchParamType.from);
    t.objective = Object.assign(new ObjectiveType(), s.objective);
    t.sampler = s.sampler;
    t.pruner = StudyPrunerType.from(s.pruner);
    t.budget = Object.assign(new StudyBudgetType(), s.budget);
    t.parallelism = s.parallelism;
    t.seed = s.seed;
    t.gpuCount = s.gpuCount;
    t.status = s.status;
    t.trialsStarted = s.trialsStarted;
    t.trialsRunning = s.trialsActive;
    t.gpuSecondsUsed = s.gpuSecondsUsed;
    t.createdAt = s.createdAt;
    t.finishedAt = s.finishedAt;
    t.error = s.error;
    return t;
  }
}

@ObjectType()
export class StudyConnection extends Connection(StudyType) {}

@ObjectType('Trial', { implements: Node, description: 'One sampled point of a study.' })
export class TrialType extends Node {
  localId!: string;
  studyLocalId!: string;
  runLocalId!: string | null;
  runLocalIds!: string[];

  @Field(() => Int, { description: '0, 1, … in the order trials were created.' })
  number!: number;

  @Field(() => GraphQLJSONObject, { description: 'The sampled hyperparameters.' })
  params!: Record<string, unknown>;

  @Field(() => TrialState)
  state!: TrialState;

  @Field(() => Float, {
    nullable: true,
    description:
      'The objective’s value: COMPLETE, its final one; PRUNED, the one it had where it was pruned.',
  })
  value!: number | null;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field({ description: 'Asked for by a client (ask-and-tell) rather than run in the queue.' })
  asked!: boolean;

  @Field(() => Int, {
    nullable: true,
    description: 'ASHA: the rung it trains toward or waits at (0 first).',
  })
  rung!: number | null;

  @Field(() => [Float], { description: 'ASHA: its objective at each rung it reached.' })
  rungValues!: number[];

  @Field(() => [IntermediateValueType], {
    description: 'The objective after each epoch its runs reported.',
  })
  intermediateValues!: IntermediateValueType[];

  @Field(() => Int, {
    description:
      'Epochs its runs trained, summed: a run resumed from a checkpoint counts only the epochs after it.',
  })
  epochsTrained!: number;

  @Field(() => Int, { nullable: true, description: 'The epoch at which the pruner stopped it.' })
  prunedAtEpoch!: number | null;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  static from(t: Trial): TrialType {
    return Object.assign(new TrialType(), {
      id: toGlobalId('Trial', t.id),
      localId: t.id,
      studyLocalId: t.studyId,
      runLocalId: t.runId,
      runLocalIds: [...t.pastRunIds, ...(t.runId ? [t.runId] : [])],
      number: t.number,
      params: t.params,
      state: t.state,
      value: t.value,
      error: t.error,
      asked: t.asked,
      rung: t.rung,
      rungValues: t.rungValues,
      intermediateValues: t.intermediate.map((v) => Object.assign(new IntermediateValueType(), v)),
      epochsTrained: t.epochsTrained,
      prunedAtEpoch: t.prunedAtEpoch,
      createdAt: t.createdAt,
      finishedAt: t.finishedAt,
    });
  }
}

@ObjectType('StudyTrialEvent', { description: 'The trial a study event is about.' })
export class StudyTrialEventType {
  @Field(() => ID)
  id!: string;

  @Field(() => Int)
  number!: number;

  @Field(() => TrialState)
  state!: TrialState;

  @Field(() => Float, { nullable: true })
  value!: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'The newest epoch its runs reported (null before the first).',
  })
  epoch!: number | null;

  @Field(() => Float, { nullable: true, description: 'The objective at `epoch`.' })
  epochValue!: number | null;
}

@ObjectType('StudyProgress', {
  description:
    'A study’s state after a trial started, reported epochs, was pruned, paused, promoted or ended, or the study ended.',
})
export class StudyProgressType {
  @Field(() => StudyEventKind)
  kind!: StudyEventKind;

  @Field(() => ID)
  studyId!: string;

  @Field(() => StudyStatus)
  status!: StudyStatus;

  @Field(() => StudyTrialEventType, { nullable: true })
  trial!: StudyTrialEventType | null;

  @Field(() => Int)
  trialsStarted!: number;

  @Field(() => Int)
  trialsRunning!: number;

  @Field(() => Int, { description: 'ASHA: waiting at a rung to be promoted.' })
  trialsPaused!: number;

  @Field(() => Int)
  trialsComplete!: number;

  @Field(() => Int)
  trialsPruned!: number;

  @Field(() => Int)
  trialsFailed!: number;

  @Field(() => Int)
  trialsCancelled!: number;

  @Field(() => ID, { nullable: true, description: 'The best COMPLETE trial so far.' })
  bestTrialId!: string | null;

  @Field(() => Float, { nullable: true })
  bestValue!: number | null;

  static from(e: StudyEvent): StudyProgressType {
    return Object.assign(new StudyProgressType(), {
      ...e,
      studyId: toGlobalId('Study', e.studyId),
      trial: e.trial
        ? Object.assign(new StudyTrialEventType(), {
            ...e.trial,
            id: toGlobalId('Trial', e.trial.id),
          })
        : null,
      bestTrialId: e.bestTrialId ? toGlobalId('Trial', e.bestTrialId) : null,
    });
  }
}

@InputType()
export class SearchParamInput {
  @Field({ description: 'A hyperparameter the trainer declares (see `trainers`).' })
  name!: string;

  @Field(() => ParamKind)
  kind!: ParamKind;

  @Field(() => Float, { nullable: true, description: 'FLOAT and INT: the lowest value.' })
  low?: number | null;

  @Field(() => Float, { nullable: true, description: 'FLOAT and INT: the highest value.' })
  high?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'FLOAT and INT: sample on a log scale.' })
  log?: boolean | null;

  @Field(() => [GraphQLJSON], { nullable: true, description: 'CATEGORICAL: its values.' })
  choices?: unknown[] | null;
}

@InputType()
export class ObjectiveInput {
  @Field()
  metric!: string;

  @Field(() => Direction)
  direction!: Direction;
}

@InputType()
export class StudyBudgetInput {
  @Field(() => Int)
  trials!: number;

  @Field(() => Float, { nullable: true })
  gpuSeconds?: number | null;
}

@InputType({
  description:
    'A pruner and its settings: MEDIAN takes startupTrials (default 5) and warmupEpochs (default 0); ASHA takes minResource (default 1), reductionFactor (η, default 3) and maxResource (default: the epochs every trial would get).',
})
export class PrunerInput {
  @Field(() => PrunerKind)
  kind!: PrunerKind;

  @Field(() => Int, { nullable: true })
  startupTrials?: number | null;

  @Field(() => Int, { nullable: true })
  warmupEpochs?: number | null;

  @Field(() => Int, { nullable: true })
  minResource?: number | null;

  @Field(() => Int, { nullable: true })
  reductionFactor?: number | null;

  @Field(() => Int, { nullable: true })
  maxResource?: number | null;
}

@InputType()
export class CreateStudyInput {
  @Field({ description: 'Unique; its runs are tracked in the experiment hpo/<name>.' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'A built-in trainer (see `trainers`)…' })
  builtinTrainer?: string | null;

  @Field(() => CommandTrainerInput, {
    nullable: true,
    description: '…or a command; neither for an ask-and-tell study.',
  })
  command?: CommandTrainerInput | null;

  @Field(() => ID, { nullable: true, description: 'A READY dataset snapshot (with a trainer)…' })
  datasetId?: string | null;

  @Field(() => BuildDatasetInput, {
    nullable: true,
    description:
      '…or a point-in-time training set to build first: the study starts its trials once it is READY, and ends FAILED if it cannot be built.',
  })
  buildDataset?: BuildDatasetInput | null;

  @Field(() => GraphQLJSONObject, {
    nullable: true,
    description: 'Hyperparameters every trial gets beside the sampled ones.',
  })
  hyperparameters?: Record<string, unknown> | null;

  @Field(() => [SearchParamInput])
  space!: SearchParamInput[];

  @Field(() => ObjectiveInput)
  objective!: ObjectiveInput;

  @Field(() => SamplerKind, { nullable: true, description: 'Default TPE.' })
  sampler?: SamplerKind | null;

  @Field(() => PrunerInput, { nullable: true, description: 'Default NONE.' })
  pruner?: PrunerInput | null;

  @Field(() => StudyBudgetInput)
  budget!: StudyBudgetInput;

  @Field(() => Int, { nullable: true, description: 'Most trials queued or running (default 1).' })
  parallelism?: number | null;

  @Field(() => Int, { nullable: true, description: 'Default 0.' })
  seed?: number | null;

  @Field(() => Int, { nullable: true, description: 'GPUs per trial run (default 0).' })
  gpuCount?: number | null;
}

@InputType({ description: 'How an asked trial ended: exactly one of the three.' })
export class TellTrialInput {
  @Field(() => Float, { nullable: true, description: 'The objective’s value.' })
  value?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'Stopped early as unpromising.' })
  pruned?: boolean | null;

  @Field(() => String, { nullable: true, description: 'It failed: why.' })
  failed?: string | null;
}
