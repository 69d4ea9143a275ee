import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { type ArtifactRef } from '../domain/artifacts/artifact-store';
import {
  type HardwareSample,
  type MetricPoint,
  type RunCheckpoint,
  RunStatus,
  TrainerKind,
  type TrainingRun,
} from '../domain/training/training-run';
import { type RunProgressEvent } from '../domain/training/run-events';
import { type ComparedRun } from '../domain/training/training.service';
import { type BuiltinTrainer, type ParamSpec } from '../domain/training/trainers';
import { Connection } from './connection.types';
import { BuildDatasetInput } from './feature.types';
import { Node, toGlobalId } from './node.types';

registerEnumType(RunStatus, { name: 'RunStatus' });
registerEnumType(TrainerKind, { name: 'TrainerKind' });

export enum RunOutcome {
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
}
registerEnumType(RunOutcome, { name: 'RunOutcome' });

@ObjectType('Trainer', { description: 'What a run trains with.' })
export class TrainerType {
  @Field(() => TrainerKind)
  kind!: TrainerKind;

  @Field()
  name!: string;

  @Field(() => String, { nullable: true, description: 'Code version of a built-in trainer.' })
  version!: string | null;

  @Field(() => [String], { nullable: true, description: 'The command of an external trainer.' })
  command!: string[] | null;
}

@ObjectType('TrainerParam', { description: 'A declared hyperparameter of a built-in trainer.' })
export class TrainerParamType {
  @Field()
  name!: string;

  @Field({ description: 'INT, FLOAT or INT_LIST.' })
  type!: string;

  @Field(() => Float)
  min!: number;

  @Field(() => Float)
  max!: number;

  @Field({ description: 'Whether `min` itself is excluded.' })
  minExclusive!: boolean;

  @Field(() => GraphQLJSONObject, { description: '{ "value": the default }' })
  default!: { value: unknown };

  @Field()
  description!: string;

  static from(p: ParamSpec): TrainerParamType {
    return Object.assign(new TrainerParamType(), {
      name: p.name,
      type: p.type,
      min: p.min,
      max: p.max,
      minExclusive: p.type === 'FLOAT' && p.minExclusive === true,
      default: { value: p.default },
      description: p.description,
    });
  }
}

@ObjectType('BuiltinTrainer')
export class BuiltinTrainerType {
  @Field()
  name!: string;

  @Field()
  version!: string;

  @Field()
  description!: string;

  @Field(() => [TrainerParamType])
  params!: TrainerParamType[];

  static from(t: BuiltinTrainer): BuiltinTrainerType {
    return Object.assign(new BuiltinTrainerType(), {
      name: t.name,
      version: t.version,
      description: t.description,
      params: t.params.map(TrainerParamType.from),
    });
  }
}

@ObjectType('Artifact', { description: 'A stored file, verified by its SHA-256 on every read.' })
export class ArtifactType {
  @Field()
  key!: string;

  @Field()
  sha256!: string;

  @Field(() => Float)
  size!: number;

  static from(a: ArtifactRef): ArtifactType {
    return Object.assign(new ArtifactType(), { key: a.key, sha256: a.sha256, size: a.size });
  }
}

@ObjectType('MetricPoint')
export class MetricPointType {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Int, { nullable: true, description: 'Null for per-epoch values.' })
  step!: number | null;

  @Field()
  name!: string;

  @Field(() => Float)
  value!: number;

  static from(p: MetricPoint): MetricPointType {
    return Object.assign(new MetricPointType(), p);
  }
}

@ObjectType('GpuSample')
export class GpuSampleType {
  @Field(() => Int)
  index!: number;

  @Field(() => Float)
  utilizationPercent!: number;

  @Field(() => Float)
  memoryMb!: number;
}

@ObjectType('HardwareSample')
export class HardwareSampleType {
  @Field()
  at!: Date;

  @Field(() => Float, { nullable: true })
  cpuPercent!: number | null;

  @Field(() => Float, { nullable: true })
  memoryMb!: number | null;

  @Field(() => [GpuSampleType])
  gpus!: GpuSampleType[];

  static from(h: HardwareSample): HardwareSampleType {
    return Object.assign(new HardwareSampleType(), {
      ...h,
      at: new Date(h.at),
      gpus: h.gpus.map((g) => Object.assign(new GpuSampleType(), g)),
    });
  }
}

@ObjectType('RunCheckpoint')
export class RunCheckpointType {
  @Field(() => Int)
  epoch!: number;

  @Field(() => ArtifactType)
  artifact!: ArtifactType;

  @Field()
  createdAt!: Date;

  static from(c: RunCheckpoint): RunCheckpointType {
    return Object.assign(new RunCheckpointType(), {
      epoch: c.epoch,
      artifact: ArtifactType.from(c.artifact),
      createdAt: c.createdAt,
    });
  }
}

@ObjectType('RunProgress', { description: 'A run’s state, or an epoch that just ended.' })
export class RunProgressType {
  @Field(() => ID)
  runId!: string;

  @Field(() => RunStatus)
  status!: RunStatus;

  @Field(() => Int)
  epoch!: number;

  @Field(() => Int, { nullable: true })
  epochs!: number | null;

  @Field(() => GraphQLJSONObject, { description: 'Metric name → value for this epoch.' })
  metrics!: Record<string, number>;

  @Field()
  at!: Date;

  static from(e: RunProgressEvent): RunProgressType {
    return Object.assign(new RunProgressType(), {
      ...e,
      runId: toGlobalId('Run', e.runId),
      at: new Date(e.at),
    });
  }
}

@ObjectType('Run', {
  implements: Node,
  description:
    'A training run: submitted as a job, queued for GPUs, run by a gpu-runner, tracked in its experiment.',
})
export class RunType extends Node {
  localId!: string;
  datasetLocalId!: string;
  runnerLocalId!: string | null;
  resumeFromLocalId!: string | null;

  @Field()
  experiment!: string;

  @Field(() => TrainerType)
  trainer!: TrainerType;

  @Field(() => RunStatus)
  status!: RunStatus;

  @Field(() => GraphQLJSONObject, { description: 'As validated, with defaults filled in.' })
  hyperparameters!: Record<string, unknown>;

  @Field(() => Int)
  gpuCount!: number;

  @Field(() => Int, { nullable: true })
  gpuMemoryMb!: number | null;

  @Field(() => Int)
  maxRetries!: number;

  @Field(() => Int, { description: 'Trainer failures so far; a runner that died is not one.' })
  failures!: number;

  @Field(() => String, { nullable: true })
  gitCommit!: string | null;

  @Field(() => [Int], { description: 'GPU indexes on the runner (its CUDA_VISIBLE_DEVICES).' })
  gpus!: number[];

  @Field(() => Date, { nullable: true })
  leaseExpiresAt!: Date | null;

  @Field({ description: 'A cancel was asked for while the run was running.' })
  cancelRequested!: boolean;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => String, { nullable: true, description: 'The end of the trainer’s log.' })
  logTail!: string | null;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  @Field(() => Int)
  epochsDone!: number;

  @Field(() => Int, { nullable: true })
  epochsTotal!: number | null;

  @Field(() => GraphQLJSONObject, { description: 'The latest value of every metric reported.' })
  metrics!: Record<string, number>;

  @Field(() => Float, { nullable: true, description: 'From start to finish, once finished.' })
  durationSeconds!: number | null;

  @Field(() => ArtifactType, { nullable: true, description: 'The trained ONNX model.' })
  model!: ArtifactType | null;

  static from(r: TrainingRun): RunType {
    const t = new RunType();
    t.id = toGlobalId('Run', r.id);
    t.localId = r.id;
    t.datasetLocalId = r.datasetId;
    t.runnerLocalId = r.runnerId;
    t.resumeFromLocalId = r.resumeFromRunId;
    t.experiment = r.experimentName;
    t.trainer = Object.assign(new TrainerType(), {
      kind: r.trainer.kind,
      name: r.trainer.name,
      version: r.trainerVersion,
      command: r.trainer.kind === TrainerKind.COMMAND ? r.trainer.command : null,
    });
    t.status = r.status;
    t.hyperparameters = r.hyperparameters;
    t.gpuCount = r.gpuCount;
    t.gpuMemoryMb = r.gpuMemoryMb;
    t.maxRetries = r.maxRetries;
    t.failures = r.failures;
    t.gitCommit = r.gitCommit;
    t.gpus = r.gpus;
    t.leaseExpiresAt = r.leaseExpiresAt;
    t.cancelRequested = r.cancelRequestedAt !== null;
    t.error = r.error;
    t.logTail = r.logTail;
    t.createdAt = r.createdAt;
    t.startedAt = r.startedAt;
    t.finishedAt = r.finishedAt;
    t.epochsDone = r.epochsDone;
    t.epochsTotal = r.epochsTotal;
    t.metrics = r.summary;
    t.durationSeconds =
      r.startedAt && r.finishedAt ? (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000 : null;
    t.model = r.model ? ArtifactType.from(r.model) : null;
    return t;
  }
}

@ObjectType()
export class RunConnection extends Connection(RunType) {}

@InputType()
export class CommandTrainerInput {
  @Field({ description: 'A name for the trainer, like resnet_finetune.' })
  name!: string;

  @Field(() => [String], { description: 'The command and its arguments (no shell).' })
  argv!: string[];
}

@InputType()
export class SubmitTrainingJobInput {
  @Field({ description: 'Experiment name; created on first use.' })
  experiment!: string;

  @Field(() => String, { nullable: true, description: 'A built-in trainer (see `trainers`).' })
  builtinTrainer?: string | null;

  @Field(() => CommandTrainerInput, {
    nullable: true,
    description: 'An external trainer: a command that follows the trainer protocol.',
  })
  command?: CommandTrainerInput | null;

  @Field(() => ID, { nullable: true, description: 'A READY dataset snapshot…' })
  datasetId?: string | null;

  @Field(() => BuildDatasetInput, {
    nullable: true,
    description:
      '…or a point-in-time training set to build first: the run is PENDING until it is READY, then queued at its submission place.',
  })
  buildDataset?: BuildDatasetInput | null;

  @Field(() => GraphQLJSONObject, { nullable: true })
  hyperparameters?: Record<string, unknown> | null;

  @Field(() => Int, { nullable: true, description: 'GPUs the run needs (default 0).' })
  gpuCount?: number | null;

  @Field(() => Int, { nullable: true })
  gpuMemoryMb?: number | null;

  @Field(() => Int, { nullable: true, description: 'Retries after a trainer failure (default 2).' })
  maxRetries?: number | null;

  @Field(() => String, { nullable: true, description: 'Commit of the training code.' })
  gitCommit?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'Register the trained model under this name when the run succeeds.',
  })
  registerAs?: string | null;

  @Field(() => ID, {
    nullable: true,
    description:
      'Continue an ended run of the same trainer and dataset from its newest checkpoint (e.g. with more epochs): the run trains only the epochs after it. Its `resumedFrom` says which.',
  })
  resumeFrom?: string | null;
}

@InputType()
export class FinishRunInput {
  @Field(() => RunOutcome)
  outcome!: RunOutcome;

  @Field({ nullable: true, description: 'For FAILED: whether another attempt may succeed.' })
  retryable?: boolean;

  @Field(() => String, { nullable: true })
  error?: string | null;

  @Field(() => String, { nullable: true })
  logTail?: string | null;
}

@ObjectType('RunComparisonRow')
export class RunComparisonRowType {
  @Field(() => RunType)
  run!: RunType;

  @Field(() => [Float], {
    nullable: 'items',
    description: 'Values in the order of `columns`; null where the run has no such metric.',
  })
  values!: (number | null)[];
}

@ObjectType('RunComparison', { description: 'Runs side by side, sorted by one metric.' })
export class RunComparisonType {
  @Field(() => [String], {
    description: 'Every metric any compared run has, plus duration_seconds.',
  })
  columns!: string[];

  @Field(() => [RunComparisonRowType])
  rows!: RunComparisonRowType[];

  static from(rows: ComparedRun[]): RunComparisonType {
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
    return Object.assign(new RunComparisonType(), {
      columns,
      rows: rows.map((r) =>
        Object.assign(new RunComparisonRowType(), {
          run: RunType.from(r.run),
          values: columns.map((c) => r.metrics[c] ?? null),
        }),
      ),
    });
  }
}

@InputType()
export class EpochMetricsInput {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Int, { nullable: true, description: 'Epochs the run will train in all.' })
  epochs?: number | null;

  @Field(() => GraphQLJSONObject, { description: 'Metric name → value, e.g. {"val_auc": 0.71}.' })
  metrics!: Record<string, number>;
}

@InputType()
export class MetricPointInput {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Int)
  step!: number;

  @Field()
  name!: string;

  @Field(() => Float)
  value!: number;
}

@InputType()
export class GpuSampleInput {
  @Field(() => Int)
  index!: number;

  @Field(() => Float)
  utilizationPercent!: number;

  @Field(() => Float)
  memoryMb!: number;
}

@InputType()
export class HardwareSampleInput {
  @Field()
  at!: Date;

  @Field(() => Float, { nullable: true })
  cpuPercent?: number | null;

  @Field(() => Float, { nullable: true })
  memoryMb?: number | null;

  @Field(() => [GpuSampleInput], { nullable: true })
  gpus?: GpuSampleInput[] | null;
}

@InputType()
export class RunProgressInput {
  @Field(() => [EpochMetricsInput], { nullable: true })
  epochs?: EpochMetricsInput[] | null;

  @Field(() => [MetricPointInput], { nullable: true, description: 'Opt-in per-step metrics.' })
  steps?: MetricPointInput[] | null;

  @Field(() => [HardwareSampleInput], { nullable: true })
  hardware?: HardwareSampleInput[] | null;
}
