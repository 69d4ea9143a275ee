import { Arg, Ctx, ID, Mutation, Resolver } from 'type-graphql';
import { Role } from '../domain/auth/role';
import { localIdOf } from '../schema/node.types';
import { RegisterBestPayloadType } from '../schema/study-results.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

@Resolver()
export class StudyResultsResolver {
  @Mutation(() => RegisterBestPayloadType, {
    description:
      'Registers the model of the study’s best COMPLETE trial’s run as the next version of `model` (as registerModelVersion does; the same run again gives the same version). The study, the trial and the version are linked in the lineage. CONFLICT with NO_COMPLETE_TRIAL, BEST_TRIAL_HAS_NO_RUN (an asked trial) or BEST_TRIAL_HAS_NO_MODEL.',
  })
  @Allow(Role.EDITOR)
  async registerBest(
    @Arg('studyId', () => ID) studyId: string,
    @Arg('model') model: string,
    @Arg('reason', { defaultValue: '' }) reason: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RegisterBestPayloadType> {
    return RegisterBestPayloadType.from(
      await ctx.services.studyResults.registerBest(
        ctx.principal,
        localIdOf(studyId, 'Study'),
        model,
        reason,
      ),
    );
  }
}
