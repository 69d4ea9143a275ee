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
import { type DriftSettings } from '../domain/monitoring/drift';
import { type AlertEvent, MonitorKind } from '../domain/monitoring/monitor';
import { type PerformanceSettings } from '../domain/monitoring/performance';
import { DEFAULT_RETRAINING_POLICY } from '../domain/monitoring/retraining';
import { toPageRequest } from '../domain/shared/pagination';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import {
  AlertConnection,
  AlertEventType,
  AlertType,
  CreateMonitorInput,
  type DriftSettingsInput,
  MonitorReportConnection,
  MonitorReportType,
  MonitorType,
  type PerformanceSettingsInput,
  RetrainingPolicyInput,
  RetrainingType,
} from '../schema/monitoring.types';
import { AFTER_DESCRIPTION, localIdOf } from '../schema/node.types';
import { ModelVersionType } from '../schema/registry.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';
import { versionField } from './loaders';

@Resolver(() => MonitorType)
export class MonitorResolver {
  @Mutation(() => MonitorType, {
    description:
      'Creates (or reconfigures) the endpoint’s monitor of that kind. The api runs it every `stepMs` (checked every MONITOR_INTERVAL_MS); `runMonitor` runs it now.',
  })
  @Allow(Role.EDITOR)
  async createMonitor(
    @Arg('input') input: CreateMonitorInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<MonitorType> {
    return MonitorType.from(
      await ctx.services.monitoring.create(ctx.principal, {
        endpoint: input.endpoint,
        kind: input.kind,
        windowMs: input.windowMs,
        stepMs: input.stepMs,
        drift: input.drift ? driftSettings(input.drift) : null,
        performance: input.performance ? performanceSettings(input.performance) : null,
      }),
    );
  }

  @Mutation(() => [MonitorReportType], {
    description: 'Judges the monitor’s window ending now: one report per version that served.',
  })
  @Allow(Role.EDITOR)
  async runMonitor(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<MonitorReportType[]> {
    return (await ctx.services.monitoring.run(localIdOf(id, 'Monitor'))).map(
      MonitorReportType.from,
    );
  }

  @Query(() => [MonitorType], { description: 'The monitors of an endpoint.' })
  @Allow(Role.VIEWER)
  async monitors(
    @Arg('endpoint') endpoint: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<MonitorType[]> {
    return (await ctx.services.monitoring.monitorsOf(endpoint)).map(MonitorType.from);
  }

  @Query(() => MonitorReportConnection, { description: 'A monitor’s reports, oldest first.' })
  @Allow(Role.VIEWER)
  async monitorReports(
    @Arg('monitorId', () => ID) monitorId: string,
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<MonitorReportConnection> {
    const page = await ctx.services.monitoring.reports(
      localIdOf(monitorId, 'Monitor'),
      toPageRequest(args),
    );
    return toConnection(page, MonitorReportType.from, (r) => ({
      createdAt: r.createdAt,
      id: r.id,
    }));
  }

  @Query(() => AlertConnection, {
    description: 'Alerts, oldest first; `open` only those not cleared.',
  })
  @Allow(Role.VIEWER)
  async alerts(
    @Arg('open', { defaultValue: false }) open: boolean,
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<AlertConnection> {
    const page = await ctx.services.monitoring.alerts({ openOnly: open }, toPageRequest(args));
    return toConnection(page, AlertType.from, (a) => ({ createdAt: a.createdAt, id: a.id }));
  }

  @Mutation(() => AlertType, {
    description: 'Acknowledges an alert: it stays open until a clean window clears it.',
  })
  @Allow(Role.EDITOR)
  async acknowledgeAlert(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<AlertType> {
    return AlertType.from(
      await ctx.services.monitoring.acknowledge(ctx.principal, localIdOf(id, 'Alert')),
    );
  }

  @Subscription(() => AlertEventType, {
    description:
      'Data-drift alerts as they open, are acknowledged and clear (all endpoints, or one).',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.monitoring.subscribe(
        MonitorKind.DATA_DRIFT,
        (args as { endpoint?: string | null }).endpoint ?? null,
        (args as { after?: string | null }).after ?? null,
      ),
  })
  @Allow(Role.VIEWER)
  driftEvents(
    @Arg('endpoint', () => String, { nullable: true }) _endpoint: string | null,
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() e: AlertEvent,
  ): AlertEventType {
    return AlertEventType.from(e);
  }

  @Subscription(() => AlertEventType, {
    description:
      'Performance (concept drift) and data-validation alerts as they open, are acknowledged and clear.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.monitoring.subscribe(
        MonitorKind.PERFORMANCE,
        (args as { endpoint?: string | null }).endpoint ?? null,
        (args as { after?: string | null }).after ?? null,
      ),
  })
  @Allow(Role.VIEWER)
  performanceEvents(
    @Arg('endpoint', () => String, { nullable: true }) _endpoint: string | null,
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() e: AlertEvent,
  ): AlertEventType {
    return AlertEventType.from(e);
  }
}

@Resolver(() => RetrainingType)
export class RetrainingResolver {
  @Mutation(() => Boolean, {
    description:
      'Sets a model’s retraining policy (fields left out keep their values, or the defaults).',
  })
  @Allow(Role.EDITOR)
  async setRetrainingPolicy(
    @Arg('model') model: string,
    @Arg('policy', () => RetrainingPolicyInput) policy: RetrainingPolicyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<boolean> {
    const { minAucVsChampion, minRows, minPerClass, maxMissingShare, ...rest } = policy;
    const current = await ctx.services.retraining.policyOf(model);
    const validation = {
      ...(current?.validation ?? DEFAULT_RETRAINING_POLICY.validation),
      ...definedOnly({ minRows, minPerClass, maxMissingShare }),
    };
    await ctx.services.retraining.setPolicy(
      model,
      { ...definedOnly(rest), validation },
      minAucVsChampion ?? null,
    );
    return true;
  }

  @Query(() => [RetrainingType], { description: 'A model’s retrainings, oldest first.' })
  @Allow(Role.VIEWER)
  async retrainings(
    @Arg('model') model: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RetrainingType[]> {
    return (await ctx.services.retraining.retrainingsOf(model)).map(RetrainingType.from);
  }

  @Mutation(() => [RetrainingType], {
    description:
      'Moves every open retraining on now (the api also does so every MONITOR_INTERVAL_MS).',
  })
  @Allow(Role.ADMIN)
  async advanceRetrainings(@Ctx() ctx: GraphQLContext): Promise<RetrainingType[]> {
    return (await ctx.services.retraining.advance()).map(RetrainingType.from);
  }

  @FieldResolver(() => ModelVersionType, { nullable: true, description: 'The version retrained.' })
  async champion(
    @Root() r: RetrainingType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, r.championLocalId);
  }

  @FieldResolver(() => ModelVersionType, { nullable: true, description: 'The version it trained.' })
  async challenger(
    @Root() r: RetrainingType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, r.challengerLocalId);
  }
}

@Resolver(() => MonitorReportType)
export class MonitorReportResolver {
  @FieldResolver(() => ModelVersionType, { nullable: true, description: 'The version judged.' })
  async version(
    @Root() r: MonitorReportType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, r.versionLocalId);
  }
}

@Resolver(() => AlertType)
export class AlertResolver {
  @FieldResolver(() => ModelVersionType, { nullable: true })
  async version(
    @Root() a: AlertType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, a.versionLocalId);
  }
}

function driftSettings(i: DriftSettingsInput): Partial<DriftSettings> {
  const out: Partial<DriftSettings> = {};
  if (i.rule) out.rule = { test: i.rule.test, threshold: i.rule.threshold };
  if (i.perFeature)
    out.perFeature = Object.fromEntries(
      i.perFeature.map((r) => [r.feature, { test: r.test, threshold: r.threshold }]),
    );
  if (i.categorical) out.categorical = i.categorical;
  if (i.bins != null) out.bins = i.bins;
  if (i.minSamples != null) out.minSamples = i.minSamples;
  return out;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v != null)) as Partial<T>;
}

function performanceSettings(i: PerformanceSettingsInput): Partial<PerformanceSettings> {
  return definedOnly({
    task: i.task as PerformanceSettings['task'] | undefined,
    minLabels: i.minLabels,
    maxAucDrop: i.maxAucDrop,
    floors: definedOnly({
      auc: i.aucFloor,
      accuracy: i.accuracyFloor,
      precision: i.precisionFloor,
      recall: i.recallFloor,
    }),
    ceilings: definedOnly({ log_loss: i.logLossCeiling, mae: i.maeCeiling, rmse: i.rmseCeiling }),
  });
}
