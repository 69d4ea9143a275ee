import { eventCursor } from '../domain/events/event-bus';
import { EVENT_CURSOR_DESCRIPTION } from './node.types';
import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DriftTest, type FeatureDrift } from '../domain/monitoring/drift';
import {
  type Alert,
  type AlertEvent,
  AlertKind,
  type Monitor,
  MonitorKind,
  type MonitorReport,
} from '../domain/monitoring/monitor';
import { type Retraining, RetrainingStatus } from '../domain/monitoring/retraining';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';

registerEnumType(MonitorKind, { name: 'MonitorKind' });
registerEnumType(AlertKind, { name: 'AlertKind' });
registerEnumType(DriftTest, {
  name: 'DriftTest',
  description:
    'DEFAULT: numeric features drift when KS p < 0.01 and Wasserstein ≥ 0.1 reference sd; categorical when chi-squared p < 0.01 and JS ≥ 0.1. KS, PSI, JS, WASSERSTEIN (normalised by the reference sd): drift above the threshold; CHI2: drift when p is below it.',
});

export enum AlertStatus {
  OPEN = 'OPEN',
  ACKNOWLEDGED = 'ACKNOWLEDGED',
  CLEARED = 'CLEARED',
}
registerEnumType(AlertStatus, { name: 'AlertStatus' });

@InputType()
export class DriftRuleInput {
  @Field(() => DriftTest)
  test!: DriftTest;

  @Field(() => Float, { defaultValue: 0 })
  threshold!: number;
}

@InputType()
export class FeatureDriftRuleInput extends DriftRuleInput {
  @Field({ description: 'A feature ref of the model, like airport_delays@1:dep_delay_24h.' })
  feature!: string;
}

@InputType()
export class DriftSettingsInput {
  @Field(() => DriftRuleInput, { nullable: true, description: 'For every feature (DEFAULT).' })
  rule?: DriftRuleInput | null;

  @Field(() => [FeatureDriftRuleInput], { nullable: true })
  perFeature?: FeatureDriftRuleInput[] | null;

  @Field(() => [String], { nullable: true, description: 'Features holding category codes.' })
  categorical?: string[] | null;

  @Field(() => Int, { nullable: true, description: 'Bins cut at reference quantiles (10).' })
  bins?: number | null;

  @Field(() => Int, { nullable: true, description: 'Fewer values are not judged (100).' })
  minSamples?: number | null;
}

@InputType()
export class PerformanceSettingsInput {
  @Field({ nullable: true, description: 'CLASSIFICATION (default) or REGRESSION.' })
  task?: string;

  @Field(() => Int, { nullable: true, description: 'Labels a window needs to be judged (200).' })
  minLabels?: number;

  @Field(() => Float, { nullable: true }) aucFloor?: number;
  @Field(() => Float, { nullable: true }) accuracyFloor?: number;
  @Field(() => Float, { nullable: true }) precisionFloor?: number;
  @Field(() => Float, { nullable: true }) recallFloor?: number;
  @Field(() => Float, { nullable: true }) logLossCeiling?: number;
  @Field(() => Float, { nullable: true }) maeCeiling?: number;
  @Field(() => Float, { nullable: true }) rmseCeiling?: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Alert when AUC is this far below the version’s reference evaluation (0.05).',
  })
  maxAucDrop?: number;
}

@InputType()
export class CreateMonitorInput {
  @Field()
  endpoint!: string;

  @Field(() => MonitorKind)
  kind!: MonitorKind;

  @Field(() => Float, { description: 'Window judged, ms of prediction time.' })
  windowMs!: number;

  @Field(() => Float, { description: 'How often it slides, ms.' })
  stepMs!: number;

  @Field(() => DriftSettingsInput, { nullable: true })
  drift?: DriftSettingsInput | null;

  @Field(() => PerformanceSettingsInput, { nullable: true })
  performance?: PerformanceSettingsInput | null;
}

@ObjectType('Monitor', {
  implements: Node,
  description: 'Judges the last `windowMs` of an endpoint’s traffic every `stepMs`.',
})
export class MonitorType extends Node {
  localId!: string;

  @Field(() => MonitorKind)
  kind!: MonitorKind;

  @Field(() => Float)
  windowMs!: number;

  @Field(() => Float)
  stepMs!: number;

  @Field(() => GraphQLJSONObject, { description: 'Drift or performance settings in force.' })
  settings!: Record<string, unknown>;

  @Field(() => Date, { nullable: true })
  lastRunAt!: Date | null;

  static from(m: Monitor): MonitorType {
    return Object.assign(new MonitorType(), {
      id: toGlobalId('Monitor', m.id),
      localId: m.id,
      kind: m.kind,
      windowMs: m.windowMs,
      stepMs: m.stepMs,
      settings: (m.drift ?? m.performance ?? {}) as Record<string, unknown>,
      lastRunAt: m.lastRunAt,
    });
  }
}

@ObjectType('FeatureDrift', {
  description:
    'One feature’s statistics and verdict, with both windows’ histograms over the same bins (numeric: cut at the reference’s quantiles, `edges`; categorical: the codes in `categories`).',
})
export class FeatureDriftType {
  @Field() feature!: string;
  @Field() categorical!: boolean;
  @Field(() => Int) referenceCount!: number;
  @Field(() => Int) currentCount!: number;
  @Field(() => Int) referenceMissing!: number;
  @Field(() => Int) currentMissing!: number;
  @Field(() => Float, { nullable: true }) ksStatistic!: number | null;
  @Field(() => Float, { nullable: true }) ksPValue!: number | null;
  @Field(() => Float) psi!: number;
  @Field(() => Float) jsDistance!: number;
  @Field(() => Float, { nullable: true }) wasserstein!: number | null;
  @Field(() => Float, {
    nullable: true,
    description: 'Wasserstein over the reference’s sd (null: no spread in the reference).',
  })
  wassersteinNormalized!: number | null;
  @Field(() => Float, { nullable: true }) chi2Statistic!: number | null;
  @Field(() => Float, { nullable: true }) chi2PValue!: number | null;
  @Field(() => [Float]) edges!: number[];
  @Field(() => [Float]) categories!: number[];
  @Field(() => [Int]) referenceCounts!: number[];
  @Field(() => [Int]) currentCounts!: number[];
  @Field() drifted!: boolean;
  @Field({ description: 'The rule that decided, with the figures it looked at.' }) rule!: string;

  static from(f: FeatureDrift): FeatureDriftType {
    return Object.assign(new FeatureDriftType(), f);
  }
}

@ObjectType('MonitorReport', {
  implements: Node,
  description:
    'One check of one version over one window: data drift per feature (DATA_DRIFT) or metrics of the labelled predictions (PERFORMANCE). In lineage as DriftReport / PerformanceReport.',
})
export class MonitorReportType extends Node {
  versionLocalId!: string;

  @Field(() => MonitorKind)
  kind!: MonitorKind;

  @Field()
  windowStart!: Date;

  @Field()
  windowEnd!: Date;

  @Field(() => Int)
  predictions!: number;

  @Field(() => Int, { nullable: true, description: 'PERFORMANCE: predictions labelled so far.' })
  labels!: number | null;

  @Field()
  alerting!: boolean;

  @Field()
  summary!: string;

  @Field(() => ID, {
    nullable: true,
    description: 'DATA_DRIFT: the training snapshot compared with.',
  })
  referenceDatasetId!: string | null;

  @Field(() => [FeatureDriftType])
  features!: FeatureDriftType[];

  @Field(() => GraphQLJSONObject, { nullable: true })
  metrics!: Record<string, number> | null;

  @Field(() => GraphQLJSONObject, {
    nullable: true,
    description: 'PERFORMANCE: the version’s reference evaluation.',
  })
  reference!: Record<string, number> | null;

  @Field(() => [String])
  reasons!: string[];

  @Field()
  createdAt!: Date;

  static from(r: MonitorReport): MonitorReportType {
    const drift = r.kind === MonitorKind.DATA_DRIFT;
    return Object.assign(new MonitorReportType(), {
      id: toGlobalId(drift ? 'DriftReport' : 'PerformanceReport', r.id),
      versionLocalId: r.versionId,
      kind: r.kind,
      windowStart: r.windowStart,
      windowEnd: r.windowEnd,
      predictions: r.predictions,
      labels: drift ? null : r.labels,
      alerting: r.alerting,
      summary: r.summary,
      referenceDatasetId:
        drift && r.referenceDatasetId ? toGlobalId('DatasetSnapshot', r.referenceDatasetId) : null,
      features: drift ? r.features.map(FeatureDriftType.from) : [],
      metrics: drift ? null : r.metrics,
      reference: drift ? null : r.reference,
      reasons: drift ? [] : r.reasons,
      createdAt: r.createdAt,
    });
  }
}

@ObjectType()
export class MonitorReportConnection extends Connection(MonitorReportType) {}

@ObjectType('Alert', {
  implements: Node,
  description:
    'Raised by a monitor (one open per monitor and version until a clean window clears it) or by a retraining whose data failed validation.',
})
export class AlertType extends Node {
  versionLocalId!: string;

  @Field(() => AlertKind)
  kind!: AlertKind;

  @Field(() => AlertStatus)
  status!: AlertStatus;

  @Field()
  summary!: string;

  @Field(() => ID, { nullable: true })
  monitorId!: string | null;

  @Field(() => ID, { nullable: true })
  reportId!: string | null;

  @Field()
  openedAt!: Date;

  @Field({ description: 'The last window that still alerted.' })
  lastSeenAt!: Date;

  @Field(() => Date, { nullable: true })
  acknowledgedAt!: Date | null;

  @Field(() => String, { nullable: true })
  acknowledgedBy!: string | null;

  @Field(() => Date, { nullable: true })
  clearedAt!: Date | null;

  static from(a: Alert): AlertType {
    return Object.assign(new AlertType(), {
      id: toGlobalId('Alert', a.id),
      versionLocalId: a.versionId,
      kind: a.kind,
      status: a.clearedAt
        ? AlertStatus.CLEARED
        : a.acknowledgedAt
          ? AlertStatus.ACKNOWLEDGED
          : AlertStatus.OPEN,
      summary: a.summary,
      monitorId: a.monitorId ? toGlobalId('Monitor', a.monitorId) : null,
      reportId: a.reportId
        ? toGlobalId(
            a.kind === AlertKind.DATA_DRIFT ? 'DriftReport' : 'PerformanceReport',
            a.reportId,
          )
        : null,
      openedAt: a.openedAt,
      lastSeenAt: a.lastSeenAt,
      acknowledgedAt: a.acknowledgedAt,
      acknowledgedBy: a.acknowledgedBy,
      clearedAt: a.clearedAt,
    });
  }
}

@ObjectType()
export class AlertConnection extends Connection(AlertType) {}

@ObjectType('AlertEvent')
export class AlertEventType {
  @Field(() => String, { nullable: true })
  endpoint!: string | null;

  @Field({ description: 'OPENED, ACKNOWLEDGED or CLEARED.' })
  status!: string;

  @Field(() => AlertType)
  alert!: AlertType;

  @Field(() => String, { nullable: true, description: EVENT_CURSOR_DESCRIPTION })
  cursor!: string | null;

  static from(e: AlertEvent): AlertEventType {
    return Object.assign(new AlertEventType(), {
      endpoint: e.endpoint,
      status: e.status,
      alert: AlertType.from(reviveAlert(e.alert)),
      cursor: eventCursor(e),
    });
  }
}

/** Events cross Redis as JSON: dates arrive as strings. */
function reviveAlert(a: Alert): Alert {
  const d = (x: Date | string | null) => (x === null ? null : new Date(x));
  return {
    ...a,
    openedAt: d(a.openedAt) as Date,
    lastSeenAt: d(a.lastSeenAt) as Date,
    acknowledgedAt: d(a.acknowledgedAt),
    clearedAt: d(a.clearedAt),
    createdAt: d(a.createdAt) as Date,
  };
}

registerEnumType(RetrainingStatus, { name: 'RetrainingStatus' });

@InputType()
export class RetrainingPolicyInput {
  @Field(() => [AlertKind], {
    nullable: true,
    description:
      'Alert kinds that start a retraining ([PERFORMANCE]; DATA_DRIFT alone does not by default).',
  })
  triggers?: AlertKind[];

  @Field(() => Float, {
    nullable: true,
    description: 'Least time between two retrainings, ms (24 h).',
  })
  cooldownMs?: number;

  @Field(() => Float, { nullable: true, description: 'Labelled traffic used, ms back (30 days).' })
  dataWindowMs?: number;

  @Field(() => Float, { nullable: true, description: 'Newest share held out to judge (0.2).' })
  holdoutShare?: number;

  @Field(() => Float, { nullable: true, description: 'Shadow phase before the canary, ms (0).' })
  shadowMs?: number;

  @Field(() => Int, { nullable: true, description: 'Validation: fewest rows (200).' })
  minRows?: number;

  @Field(() => Int, {
    nullable: true,
    description: 'Validation: fewest rows of the rarer class (20).',
  })
  minPerClass?: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Validation: largest missing share per feature (0.2).',
  })
  maxMissingShare?: number;

  @Field(() => Float, {
    nullable: true,
    description:
      'Sets the model’s gate into STAGING: challenger AUC ≥ champion AUC − this, on the same held-out snapshot (e.g. 0.005).',
  })
  minAucVsChampion?: number;
}

@ObjectType('RetrainingStep')
export class RetrainingStepType {
  @Field() at!: Date;
  @Field(() => RetrainingStatus) status!: RetrainingStatus;
  @Field() detail!: string;
}

@ObjectType('Retraining', {
  implements: Node,
  description:
    'One turn of the loop: alert → validated snapshot → run → gates → shadow → canary → production.',
})
export class RetrainingType extends Node {
  championLocalId!: string;
  challengerLocalId!: string | null;

  @Field(() => RetrainingStatus) status!: RetrainingStatus;
  @Field() cause!: string;
  @Field(() => ID, { nullable: true }) alertId!: string | null;
  @Field(() => ID, { nullable: true }) trainDatasetId!: string | null;
  @Field(() => ID, { nullable: true }) holdoutDatasetId!: string | null;
  @Field(() => ID, { nullable: true }) runId!: string | null;
  @Field(() => [RetrainingStepType], { description: 'The timeline, oldest first.' })
  steps!: RetrainingStepType[];
  @Field() createdAt!: Date;

  static from(r: Retraining): RetrainingType {
    const gid = (type: string, id: string | null) => (id ? toGlobalId(type, id) : null);
    return Object.assign(new RetrainingType(), {
      id: toGlobalId('Retraining', r.id),
      championLocalId: r.championId,
      challengerLocalId: r.challengerId,
      status: r.status,
      cause: r.cause,
      alertId: gid('Alert', r.alertId),
      trainDatasetId: gid('DatasetSnapshot', r.trainDatasetId),
      holdoutDatasetId: gid('DatasetSnapshot', r.holdoutDatasetId),
      runId: gid('Run', r.runId),
      steps: r.steps.map((s) =>
        Object.assign(new RetrainingStepType(), { ...s, at: new Date(s.at) }),
      ),
      createdAt: r.createdAt,
    });
  }
}
