import {
  Arg,
  Args,
  Ctx,
  FieldResolver,
  ID,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { Role } from '../domain/auth/role';
import { InvalidInputError } from '../domain/shared/domain-error';
import { toPageRequest } from '../domain/shared/pagination';
import { bestTrial, HpoErrorCode, StudyStatus } from '../domain/hpo/study';
import { type StudyEvent } from '../domain/hpo/study-events';
import { type TrialOutcome } from '../domain/hpo/study.service';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { DatasetSnapshotType } from '../schema/feature.types';
import {
  CreateStudyInput,
  StudyConnection,
  StudyProgressType,
  StudyType,
  TellTrialInput,
  TrialType,
} from '../schema/hpo.types';
import { localIdOf } from '../schema/node.types';
import { RunType } from '../schema/training.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

@Resolver(() => StudyType)
export class StudyResolver {
  @Query(() => StudyType, { nullable: true })
  @Allow(Role.VIEWER)
  async study(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<StudyType | null> {
    const [s] = await ctx.services.studies.byIds([localIdOf(id, 'Study')]);
    return s ? StudyType.from(s) : null;
  }

  @Query(() => StudyConnection, { description: 'Studies, oldest first.' })
  @Allow(Role.VIEWER)
  async studies(
    @Args() args: ConnectionArgs,
    @Arg('status', () => StudyStatus, { nullable: true }) status: StudyStatus | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<StudyConnection> {
    const page = await ctx.services.studies.list(toPageRequest(args), {
      status: status ?? undefined,
    });
    return toConnection(page, StudyType.from, (s) => ({ createdAt: s.createdAt, id: s.id }));
  }

  @Subscription(() => StudyProgressType, {
    description:
      'A study’s progress: its state first, then each trial started, pruned or ended with the counts and best trial after it; completes once the study has ended and no trial is open.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.studies.progress(
        localIdOf(args.study as string, 'Study'),
      ),
  })
  @Allow(Role.VIEWER)
  studyProgress(@Arg('study', () => ID) _study: string, @Root() e: StudyEvent): StudyProgressType {
    return StudyProgressType.from(e);
  }

  @Mutation(() => StudyType, {
    description:
      'Checks the search space against the trainer’s declared hyperparameters, then starts trials in the training queue (at most `parallelism` at once).',
  })
  @Allow(Role.EDITOR)
  async createStudy(
    @Arg('input') input: CreateStudyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<StudyType> {
    return StudyType.from(
      await ctx.services.studies.create(
        {
          ...input,
          datasetId: input.datasetId == null ? null : localIdOf(input.datasetId, 'DatasetSnapshot'),
          buildDataset: input.buildDataset?.toRequest() ?? null,
          space: input.space.map((p) => ({ ...p })),
          objective: { ...input.objective },
          budget: { ...input.budget },
          pruner: input.pruner ? { ...input.pruner } : null,
        },
        ctx.principal,
      ),
    );
  }

  @Mutation(() => StudyType, {
    description: 'The study ends; its queued trials leave the queue and its running ones stop.',
  })
  @Allow(Role.EDITOR)
  async cancelStudy(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<StudyType> {
    return StudyType.from(await ctx.services.studies.cancel(localIdOf(id, 'Study')));
  }

  @Mutation(() => TrialType, {
    description:
      'Ask: a new trial’s parameters (no run is started); run it anywhere and `tellTrial` its outcome.',
  })
  @Allow(Role.EDITOR)
  async askTrial(
    @Arg('studyId', () => ID) studyId: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<TrialType> {
    return TrialType.from(await ctx.services.studies.ask(localIdOf(studyId, 'Study')));
  }

  @Mutation(() => TrialType, { description: 'Tell: how an asked trial ended.' })
  @Allow(Role.EDITOR)
  async tellTrial(
    @Arg('trialId', () => ID) trialId: string,
    @Arg('input') input: TellTrialInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<TrialType> {
    const given = [input.value != null, input.pruned === true, input.failed != null];
    if (given.filter(Boolean).length !== 1)
      throw new InvalidInputError(
        HpoErrorCode.INVALID_STUDY,
        'Give exactly one of value, pruned: true or failed',
        { field: 'input' },
      );
    const outcome: TrialOutcome =
      input.value != null
        ? { value: input.value }
        : input.pruned === true
          ? { pruned: true }
          : { failed: input.failed as string };
    return TrialType.from(await ctx.services.studies.tell(localIdOf(trialId, 'Trial'), outcome));
  }

  @FieldResolver(() => [TrialType], { description: 'Every trial, by number.' })
  async trials(@Root() s: StudyType, @Ctx() ctx: GraphQLContext): Promise<TrialType[]> {
    return (await ctx.loaders.studyTrials.load(s.localId)).map(TrialType.from);
  }

  @FieldResolver(() => TrialType, {
    nullable: true,
    description: 'The completed trial with the best value so far.',
  })
  async bestTrial(@Root() s: StudyType, @Ctx() ctx: GraphQLContext): Promise<TrialType | null> {
    const best = bestTrial(await ctx.loaders.studyTrials.load(s.localId), s.direction);
    return best ? TrialType.from(best) : null;
  }

  @FieldResolver(() => DatasetSnapshotType, { nullable: true })
  async dataset(
    @Root() s: StudyType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DatasetSnapshotType | null> {
    if (!s.datasetLocalId) return null;
    const d = await ctx.loaders.dataset.load(s.datasetLocalId);
    return d ? DatasetSnapshotType.from(d) : null;
  }
}

@Resolver(() => TrialType)
export class TrialResolver {
  @FieldResolver(() => RunType, {
    nullable: true,
    description: 'The training run of a queue trial.',
  })
  async run(@Root() t: TrialType, @Ctx() ctx: GraphQLContext): Promise<RunType | null> {
    if (!t.runLocalId) return null;
    const r = await ctx.loaders.run.load(t.runLocalId);
    return r ? RunType.from(r) : null;
  }

  @FieldResolver(() => [RunType], {
    description: 'Its runs, oldest first: under ASHA one per rung, each resuming the one before.',
  })
  async runs(@Root() t: TrialType, @Ctx() ctx: GraphQLContext): Promise<RunType[]> {
    const runs = await ctx.loaders.run.loadMany(t.runLocalIds);
    return runs.flatMap((r) => (r && !(r instanceof Error) ? [RunType.from(r)] : []));
  }

  @FieldResolver(() => StudyType)
  async study(@Root() t: TrialType, @Ctx() ctx: GraphQLContext): Promise<StudyType> {
    return StudyType.from(await ctx.services.studies.get(t.studyLocalId));
  }
}
