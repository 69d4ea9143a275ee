import {
  Arg,
  Args,
  Ctx,
  FieldResolver,
  ID,
  Int,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { Role } from '../domain/auth/role';
import { toPageRequest } from '../domain/shared/pagination';
import { BUILTIN_TRAINERS } from '../domain/training/trainers';
import { RunStatus } from '../domain/training/training-run';
import { type RunEvent, type RunProgressEvent } from '../domain/training/run-events';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { DatasetSnapshotType } from '../schema/feature.types';
import { localIdOf } from '../schema/node.types';
import { RunnerType } from '../schema/runner.types';
import {
  BuiltinTrainerType,
  FinishRunInput,
  MetricPointType,
  HardwareSampleType,
  RunCheckpointType,
  RunComparisonType,
  RunProgressInput,
  RunProgressType,
  RunConnection,
  RunOutcome,
  RunType,
  SubmitTrainingJobInput,
} from '../schema/training.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

const OUTCOMES = {
  [RunOutcome.SUCCEEDED]: RunStatus.SUCCEEDED,
  [RunOutcome.FAILED]: RunStatus.FAILED,
  [RunOutcome.CANCELLED]: RunStatus.CANCELLED,
} as const;

@Resolver(() => RunType)
export class TrainingResolver {
  @Query(() => [BuiltinTrainerType], {
    description: 'Built-in trainers and their hyperparameters.',
  })
  @Allow(Role.VIEWER)
  trainers(): BuiltinTrainerType[] {
    return BUILTIN_TRAINERS.map(BuiltinTrainerType.from);
  }

  @Query(() => RunType, { nullable: true })
  @Allow(Role.VIEWER)
  async run(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<RunType | null> {
    const r = await ctx.loaders.run.load(localIdOf(id, 'Run'));
    return r ? RunType.from(r) : null;
  }

  @Query(() => RunConnection, { description: 'Runs, oldest submission first.' })
  @Allow(Role.VIEWER)
  async runs(
    @Args() args: ConnectionArgs,
    @Arg('experiment', () => String, { nullable: true }) experiment: string | null,
    @Arg('status', () => RunStatus, { nullable: true }) status: RunStatus | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunConnection> {
    const page = await ctx.services.training.list(toPageRequest(args), {
      experiment: experiment ?? undefined,
      status: status ?? undefined,
    });
    return toConnection(page, RunType.from, (r) => ({ createdAt: r.createdAt, id: r.id }));
  }

  @Mutation(() => RunType, {
    description:
      'Validates everything (trainer, hyperparameters, dataset, resources) before the run is queued.',
  })
  @Allow(Role.EDITOR)
  async submitTrainingJob(
    @Arg('input') input: SubmitTrainingJobInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    return RunType.from(
      await ctx.services.training.submit(
        {
          ...input,
          datasetId: input.datasetId == null ? null : localIdOf(input.datasetId, 'DatasetSnapshot'),
          buildDataset: input.buildDataset?.toRequest() ?? null,
          resumeFrom: input.resumeFrom == null ? null : localIdOf(input.resumeFrom, 'Run'),
        },
        ctx.principal,
      ),
    );
  }

  @Mutation(() => RunType, {
    description:
      'A queued run leaves the queue; a running one stops at its next checkpoint, or is killed after a grace period.',
  })
  @Allow(Role.EDITOR)
  async cancelTrainingJob(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    return RunType.from(await ctx.services.training.cancel(localIdOf(id, 'Run')));
  }

  @Mutation(() => RunType, {
    nullable: true,
    description: 'gpu-runner: the head of the queue if it fits this runner’s free GPUs, else null.',
  })
  @Allow(Role.RUNNER)
  async claimRun(
    @Arg('runnerId', () => ID) runnerId: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType | null> {
    const r = await ctx.services.runExecution.claim(ctx.principal, localIdOf(runnerId, 'Runner'));
    return r ? RunType.from(r) : null;
  }

  @Mutation(() => RunType, {
    description: 'gpu-runner: extends its lease on a run; `cancelRequested` says to stop.',
  })
  @Allow(Role.RUNNER)
  async renewRunLease(
    @Arg('runId', () => ID) runId: string,
    @Arg('runnerId', () => ID) runnerId: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    return RunType.from(
      await ctx.services.runExecution.renewLease(
        ctx.principal,
        localIdOf(runId, 'Run'),
        localIdOf(runnerId, 'Runner'),
      ),
    );
  }

  @Mutation(() => RunType, {
    description:
      'gpu-runner: the run ended on this runner. A retryable failure within the retry limit goes back in line.',
  })
  @Allow(Role.RUNNER)
  async finishRun(
    @Arg('runId', () => ID) runId: string,
    @Arg('runnerId', () => ID) runnerId: string,
    @Arg('input') input: FinishRunInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    return RunType.from(
      await ctx.services.runExecution.finish(
        ctx.principal,
        localIdOf(runId, 'Run'),
        localIdOf(runnerId, 'Runner'),
        { ...input, outcome: OUTCOMES[input.outcome] },
      ),
    );
  }

  @Subscription(() => RunType, {
    description:
      'A run as its state changes (current state first; ends when it finishes), or every run when no id is given.',
    subscribe: ({ args, context }) => {
      const id = (args as { runId?: string | null }).runId;
      return (context as GraphQLContext).services.training.updates(
        id == null ? null : localIdOf(id, 'Run'),
      );
    },
  })
  @Allow(Role.VIEWER)
  async runUpdates(
    @Arg('runId', () => ID, { nullable: true }) _runId: string | null,
    @Root() e: RunEvent,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    const r = await ctx.services.training.get(e.runId);
    return RunType.from(r);
  }

  @Mutation(() => RunType, {
    description: 'gpu-runner: per-epoch metrics (and opt-in per-step ones) and hardware samples.',
  })
  @Allow(Role.RUNNER)
  async reportRunProgress(
    @Arg('runId', () => ID) runId: string,
    @Arg('runnerId', () => ID) runnerId: string,
    @Arg('input') input: RunProgressInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunType> {
    return RunType.from(
      await ctx.services.runExecution.reportProgress(
        ctx.principal,
        localIdOf(runId, 'Run'),
        localIdOf(runnerId, 'Runner'),
        {
          epochs: input.epochs ?? [],
          steps: (input.steps ?? []).map((p) => ({ ...p })),
          hardware: (input.hardware ?? []).map((h) => ({
            at: h.at,
            cpuPercent: h.cpuPercent ?? null,
            memoryMb: h.memoryMb ?? null,
            gpus: (h.gpus ?? []).map((g) => ({ ...g })),
          })),
        },
      ),
    );
  }

  @Query(() => RunComparisonType, {
    description: 'Runs of the experiments and ids given, side by side, sorted by any metric.',
  })
  @Allow(Role.VIEWER)
  async compareRuns(
    @Arg('experiments', () => [String], { nullable: true }) experiments: string[] | null,
    @Arg('runIds', () => [ID], { nullable: true }) runIds: string[] | null,
    @Arg('sortBy', () => String, { defaultValue: 'val_auc' }) sortBy: string,
    @Arg('descending', () => Boolean, { defaultValue: true }) descending: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunComparisonType> {
    return RunComparisonType.from(
      await ctx.services.training.compare(
        {
          experiments: experiments ?? [],
          runIds: (runIds ?? []).map((id) => localIdOf(id, 'Run')),
        },
        sortBy,
        descending,
      ),
    );
  }

  @Subscription(() => RunProgressType, {
    description:
      'A run’s state, then each epoch’s metrics as it ends (a progress bar, a loss curve); completes when the run finishes.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.training.progress(
        localIdOf((args as { runId: string }).runId, 'Run'),
      ),
  })
  @Allow(Role.VIEWER)
  runProgress(
    @Arg('runId', () => ID) _runId: string,
    @Root() e: RunProgressEvent,
  ): RunProgressType {
    return RunProgressType.from(e);
  }

  @FieldResolver(() => [MetricPointType], {
    description: 'Every metric point, by epoch (and step); `name` picks one metric.',
  })
  async history(
    @Root() r: RunType,
    // Omitted, the argument is undefined (not null): both mean every metric.
    @Arg('name', () => String, { nullable: true }) name: string | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<MetricPointType[]> {
    const points = await ctx.loaders.runMetrics.load(r.localId);
    const only = name ?? null;
    return points.filter((p) => only === null || p.name === only).map(MetricPointType.from);
  }

  @FieldResolver(() => [HardwareSampleType])
  async hardware(@Root() r: RunType, @Ctx() ctx: GraphQLContext): Promise<HardwareSampleType[]> {
    return (await ctx.loaders.runHardware.load(r.localId)).map(HardwareSampleType.from);
  }

  @FieldResolver(() => [RunCheckpointType], { description: 'Verified checkpoints, newest first.' })
  async checkpoints(@Root() r: RunType, @Ctx() ctx: GraphQLContext): Promise<RunCheckpointType[]> {
    return (await ctx.services.training.checkpointsOf(r.localId)).map(RunCheckpointType.from);
  }

  @FieldResolver(() => Int, {
    nullable: true,
    description: 'Place in the queue, 1 = next to run; null when not queued.',
  })
  queuePosition(@Root() r: RunType, @Ctx() ctx: GraphQLContext): Promise<number | null> {
    return ctx.loaders.queuePosition.load(r.localId);
  }

  @FieldResolver(() => DatasetSnapshotType, { nullable: true })
  async dataset(
    @Root() r: RunType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DatasetSnapshotType | null> {
    const d = await ctx.loaders.dataset.load(r.datasetLocalId);
    return d ? DatasetSnapshotType.from(d) : null;
  }

  @FieldResolver(() => RunType, {
    nullable: true,
    description:
      'The run whose checkpoint this one started from (a study trial promoted to more epochs).',
  })
  async resumedFrom(@Root() r: RunType, @Ctx() ctx: GraphQLContext): Promise<RunType | null> {
    if (!r.resumeFromLocalId) return null;
    const x = await ctx.loaders.run.load(r.resumeFromLocalId);
    return x ? RunType.from(x) : null;
  }

  @FieldResolver(() => RunnerType, { nullable: true, description: 'The runner holding the run.' })
  async runner(@Root() r: RunType, @Ctx() ctx: GraphQLContext): Promise<RunnerType | null> {
    if (!r.runnerLocalId) return null;
    const x = await ctx.loaders.runner.load(r.runnerLocalId);
    return x ? RunnerType.from(x, ctx.services.clock.now()) : null;
  }
}
