import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { Role, roleSatisfies } from '../domain/auth/role';
import { ApiKeyType } from '../schema/api-key.types';
import { InvalidInputError } from '../domain/shared/domain-error';
import { UUID_RE } from '../domain/shared/uuid';
import { fromGlobalId, GlobalIdErrorCode, Node } from '../schema/node.types';
import { MonitorKind } from '../domain/monitoring/monitor';
import {
  AlertType,
  MonitorReportType,
  MonitorType,
  RetrainingType,
} from '../schema/monitoring.types';
import { RunnerType } from '../schema/runner.types';
import { RunType } from '../schema/training.types';
import { StudyType, TrialType } from '../schema/hpo.types';
import { DeploymentType } from '../schema/serving.types';
import { ModelType } from '../schema/registry.types';
import {
  DatasetSnapshotType,
  FeatureEntityType,
  FeatureViewType,
  FeatureViewVersionType,
  QuarantinedRecordType,
} from '../schema/feature.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';
import { versionField } from './loaders';

/**
 * How to fetch each node type by its local id, and the least role that may see it.
 * Fetches go through the request's DataLoaders, so `nodes(ids:)` batches per type.
 */
const FETCHERS: Record<
  string,
  { role: Role; fetch: (ctx: GraphQLContext, id: string) => Promise<Node | null> }
> = {
  ApiKey: {
    role: Role.ADMIN,
    fetch: async (ctx, id) => {
      const k = await ctx.loaders.apiKey.load(id);
      return k ? ApiKeyType.from(k) : null;
    },
  },
  FeatureEntity: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const e = await ctx.loaders.featureEntity.load(id);
      return e ? FeatureEntityType.from(e) : null;
    },
  },
  FeatureView: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const v = await ctx.loaders.featureView.load(id);
      return v ? FeatureViewType.from(v) : null;
    },
  },
  FeatureViewVersion: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const v = await ctx.loaders.featureViewVersion.load(id);
      return v ? FeatureViewVersionType.from(v) : null;
    },
  },
  DatasetSnapshot: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const d = await ctx.loaders.dataset.load(id);
      return d ? DatasetSnapshotType.from(d) : null;
    },
  },
  QuarantinedRecord: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const q = await ctx.loaders.quarantined.load(id);
      return q ? QuarantinedRecordType.from(q) : null;
    },
  },
  Model: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const m = await ctx.loaders.model.load(id);
      return m ? ModelType.from(m) : null;
    },
  },
  ModelVersion: {
    role: Role.VIEWER,
    fetch: (ctx, id) => versionField(ctx.loaders, id),
  },
  Run: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const r = await ctx.loaders.run.load(id);
      return r ? RunType.from(r) : null;
    },
  },
  Study: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const [s] = await ctx.services.studies.byIds([id]);
      return s ? StudyType.from(s) : null;
    },
  },
  Trial: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const [t] = await ctx.services.studies.trialsByIds([id]);
      return t ? TrialType.from(t) : null;
    },
  },
  Runner: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const r = await ctx.loaders.runner.load(id);
      return r ? RunnerType.from(r, ctx.services.clock.now()) : null;
    },
  },
  Deployment: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const d = await ctx.services.deployments.deployment(id);
      return d ? DeploymentType.from(d) : null;
    },
  },
  Monitor: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const m = await ctx.services.monitoring.monitor(id);
      return m ? MonitorType.from(m) : null;
    },
  },
  DriftReport: { role: Role.VIEWER, fetch: (ctx, id) => report(ctx, id, MonitorKind.DATA_DRIFT) },
  PerformanceReport: {
    role: Role.VIEWER,
    fetch: (ctx, id) => report(ctx, id, MonitorKind.PERFORMANCE),
  },
  Alert: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const a = await ctx.services.monitoring.alert(id);
      return a ? AlertType.from(a) : null;
    },
  },
  Retraining: {
    role: Role.VIEWER,
    fetch: async (ctx, id) => {
      const r = await ctx.services.retraining.retraining(id);
      return r ? RetrainingType.from(r) : null;
    },
  },
};

/** A monitor report by its lineage kind (DriftReport or PerformanceReport). */
async function report(ctx: GraphQLContext, id: string, kind: MonitorKind): Promise<Node | null> {
  const r = await ctx.services.monitoring.report(id);
  return r && r.kind === kind ? MonitorReportType.from(r) : null;
}

const MAX_NODES = 100;

@Resolver()
export class NodeResolver {
  @Query(() => Node, {
    nullable: true,
    description:
      'Any object by its global ID; null if it does not exist or is not visible to this key.',
  })
  @Allow(Role.VIEWER)
  node(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Node | null> {
    return fetchNode(ctx, id);
  }

  @Query(() => [Node], { nullable: 'items' })
  @Allow(Role.VIEWER)
  nodes(
    @Arg('ids', () => [ID]) ids: string[],
    @Ctx() ctx: GraphQLContext,
  ): Promise<(Node | null)[]> {
    if (ids.length > MAX_NODES) {
      throw new InvalidInputError(
        GlobalIdErrorCode.TOO_MANY_IDS,
        `At most ${MAX_NODES} ids per call (got ${ids.length})`,
        { max: MAX_NODES },
      );
    }
    return Promise.all(ids.map((id) => fetchNode(ctx, id)));
  }
}

export async function fetchNode(ctx: GraphQLContext, id: string): Promise<Node | null> {
  const g = fromGlobalId(id);
  const fetcher = g && FETCHERS[g.type];
  // Unknown or unreadable ids and objects this role may not see all look alike: absent.
  if (
    !g ||
    !fetcher ||
    !UUID_RE.test(g.localId) ||
    !roleSatisfies(ctx.principal.role, fetcher.role)
  )
    return null;
  return fetcher.fetch(ctx, g.localId);
}
