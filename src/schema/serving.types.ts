import { eventCursor } from '../domain/events/event-bus';
import { EVENT_CURSOR_DESCRIPTION } from './node.types';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { type Deployment, type DeploymentEvent, ServingRole } from '../domain/serving/deployment';
import { type AutoscalePolicy } from '../domain/serving/autoscaler';
import { type CanaryPolicy } from '../domain/serving/canary';
import { type Prediction } from '../domain/serving/prediction.service';
import { type ModelVersion } from '../domain/registry/model';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';
import { ModelVersionType } from './registry.types';

registerEnumType(ServingRole, { name: 'ServingRole' });

@ObjectType('CanaryPolicy', {
  description:
    'How a CANARY version earns traffic: it steps through `steps` (shares of request keys), one every `stepMs` while healthy, and is promoted after the last; it is rolled back when, over `windowMs`, its error rate exceeds the baseline’s by `maxErrorRateDelta` or its p99 the baseline’s times `maxP99Ratio`.',
})
export class CanaryPolicyType {
  @Field(() => [Float])
  steps!: number[];

  @Field(() => Int)
  stepMs!: number;

  @Field(() => Int)
  windowMs!: number;

  @Field(() => Float)
  maxErrorRateDelta!: number;

  @Field(() => Float)
  maxP99Ratio!: number;

  @Field(() => Int)
  minSamples!: number;
}

@InputType()
export class CanaryPolicyInput implements Partial<CanaryPolicy> {
  @Field(() => [Float], { nullable: true })
  steps?: number[];

  @Field(() => Int, { nullable: true })
  stepMs?: number;

  @Field(() => Int, { nullable: true })
  windowMs?: number;

  @Field(() => Float, { nullable: true })
  maxErrorRateDelta?: number;

  @Field(() => Float, { nullable: true })
  maxP99Ratio?: number;

  @Field(() => Int, { nullable: true })
  minSamples?: number;
}

@ObjectType('AutoscalePolicy', {
  description:
    'How many replicas (each its own ONNX session on its own thread) each version of the endpoint runs. Every AUTOSCALE_INTERVAL_MS a version is hot when the rows waiting per replica exceed `scaleUpQueueDepth` or its p99 exceeds `targetP99Ms`, cold when both are well below (a quarter of the depth, half the p99); `upAfter` hot intervals in a row add a replica, `downAfter` cold ones remove one, never within `cooldownMs` of the last change, always within [minReplicas, maxReplicas].',
})
export class AutoscalePolicyType {
  @Field(() => Int)
  minReplicas!: number;

  @Field(() => Int)
  maxReplicas!: number;

  @Field(() => Float)
  targetP99Ms!: number;

  @Field(() => Float)
  scaleUpQueueDepth!: number;

  @Field(() => Int)
  upAfter!: number;

  @Field(() => Int)
  downAfter!: number;

  @Field(() => Int)
  cooldownMs!: number;
}

@InputType()
export class AutoscalePolicyInput implements Partial<AutoscalePolicy> {
  @Field(() => Int, { nullable: true })
  minReplicas?: number;

  @Field(() => Int, { nullable: true })
  maxReplicas?: number;

  @Field(() => Float, { nullable: true })
  targetP99Ms?: number;

  @Field(() => Float, { nullable: true })
  scaleUpQueueDepth?: number;

  @Field(() => Int, { nullable: true })
  upAfter?: number;

  @Field(() => Int, { nullable: true })
  downAfter?: number;

  @Field(() => Int, { nullable: true })
  cooldownMs?: number;
}

@ObjectType('ScalingDecision')
export class ScalingDecisionType {
  @Field()
  endpoint!: string;

  @Field(() => ID)
  versionId!: string;

  @Field(() => Int)
  replicas!: number;

  @Field()
  changed!: boolean;

  @Field({ description: 'The rule that decided, with the figures it looked at.' })
  reason!: string;
}

@ObjectType('DeploymentEvent')
export class DeploymentEventType {
  @Field()
  endpoint!: string;

  @Field({ description: 'READY, CANARY_STEP, CANARY_ROLLED_BACK, CANARY_PROMOTED or SCALED.' })
  kind!: string;

  @Field(() => ID, { nullable: true })
  versionId!: string | null;

  @Field(() => Float, { nullable: true })
  share!: number | null;

  @Field(() => Int, { nullable: true, description: 'SCALED: the version’s replicas now.' })
  replicas!: number | null;

  @Field()
  detail!: string;

  @Field()
  at!: Date;

  @Field(() => String, { nullable: true, description: EVENT_CURSOR_DESCRIPTION })
  cursor!: string | null;

  static from(e: DeploymentEvent): DeploymentEventType {
    return Object.assign(new DeploymentEventType(), {
      ...e,
      versionId: e.versionId ? toGlobalId('ModelVersion', e.versionId) : null,
      at: new Date(e.at),
      cursor: eventCursor(e),
    });
  }
}

@ObjectType('ShadowComparison', {
  description: 'A shadow version’s scores beside the answers given for the same requests.',
})
export class ShadowComparisonType {
  @Field(() => ModelVersionType, { nullable: true })
  shadow!: ModelVersionType | null;

  @Field(() => Int)
  pairs!: number;

  @Field(() => Float)
  meanAbsDiff!: number;

  @Field(() => Float)
  maxAbsDiff!: number;

  @Field(() => Float, { description: 'Share of pairs on the same side of 0.5.' })
  agreement!: number;
}

@ObjectType('ABArm')
export class ABArmType {
  @Field(() => ID)
  versionId!: string;

  @Field(() => Float)
  weight!: number;
}

@InputType()
export class ABArmInput {
  @Field(() => ID, { description: 'A PRODUCTION or CANARY version of the endpoint’s model.' })
  versionId!: string;

  @Field(() => Float)
  weight!: number;
}

@ObjectType('DeploymentVersion')
export class DeploymentVersionType {
  @Field(() => ServingRole)
  role!: ServingRole;

  @Field(() => ModelVersionType)
  version!: ModelVersionType;

  @Field({ description: 'Loaded, checksum verified, warmed up.' })
  ready!: boolean;

  @Field(() => Int, { description: 'Replicas running it in this api process.' })
  replicas!: number;

  @Field(() => String, {
    nullable: true,
    description:
      'Why it could not be loaded (a corrupt or missing file, not valid ONNX); requests it would answer fail with MODEL_UNAVAILABLE.',
  })
  error!: string | null;
}

@ObjectType('Deployment', {
  implements: Node,
  description:
    'An endpoint serving one model: its PRODUCTION version, a CANARY taking `canaryShare` of request keys, and a SHADOW scoring copies, all by the versions’ registry states.',
})
export class DeploymentType extends Node {
  localId!: string;
  modelLocalId!: string;

  @Field()
  endpoint!: string;

  @Field(() => Float)
  canaryShare!: number;

  @Field(() => Int)
  maxBatch!: number;

  @Field(() => Int)
  maxWaitUs!: number;

  @Field(() => Int)
  warmupRequests!: number;

  @Field(() => CanaryPolicyType)
  canaryPolicy!: CanaryPolicyType;

  @Field(() => AutoscalePolicyType)
  autoscalePolicy!: AutoscalePolicyType;

  @Field(() => [ABArmType], { description: 'The running A/B test, if any.' })
  abArms!: ABArmType[];

  @Field()
  createdAt!: Date;

  static from(d: Deployment): DeploymentType {
    const t = new DeploymentType();
    t.id = toGlobalId('Deployment', d.id);
    t.localId = d.id;
    t.modelLocalId = d.modelId;
    t.endpoint = d.endpoint;
    t.canaryShare = d.canaryShare;
    t.maxBatch = d.maxBatch;
    t.maxWaitUs = d.maxWaitUs;
    t.warmupRequests = d.warmupRequests;
    t.canaryPolicy = Object.assign(new CanaryPolicyType(), d.canaryPolicy);
    t.autoscalePolicy = Object.assign(new AutoscalePolicyType(), d.autoscalePolicy);
    t.abArms = d.abArms.map((a) =>
      Object.assign(new ABArmType(), {
        versionId: toGlobalId('ModelVersion', a.versionId),
        weight: a.weight,
      }),
    );
    t.createdAt = d.createdAt;
    return t;
  }
}

@ObjectType()
export class DeploymentConnection extends Connection(DeploymentType) {}

@ObjectType('DeploymentStatus')
export class DeploymentStatusType {
  @Field(() => DeploymentType)
  deployment!: DeploymentType;

  @Field({ description: 'Every version that answers is loaded and warmed up.' })
  ready!: boolean;

  @Field(() => [DeploymentVersionType])
  versions!: DeploymentVersionType[];

  static from(s: {
    deployment: Deployment;
    ready: boolean;
    versions: {
      role: ServingRole;
      version: ModelVersion;
      ready: boolean;
      replicas: number;
      error: string | null;
    }[];
  }): DeploymentStatusType {
    return Object.assign(new DeploymentStatusType(), {
      deployment: DeploymentType.from(s.deployment),
      ready: s.ready,
      versions: s.versions.map((v) =>
        Object.assign(new DeploymentVersionType(), {
          role: v.role,
          version: ModelVersionType.from(v.version),
          ready: v.ready,
          replicas: v.replicas,
          error: v.error,
        }),
      ),
    });
  }
}

@ObjectType('Prediction')
export class PredictionType {
  @Field(() => ID, { description: 'Pass it to recordFeedback when the label arrives.' })
  id!: string;

  @Field(() => String, { nullable: true })
  entityKey!: string | null;

  @Field(() => Float, { description: 'Probability of the positive class.' })
  score!: number;

  @Field(() => ModelVersionType, { description: 'The version that actually produced it.' })
  version!: ModelVersionType;

  @Field(() => ServingRole)
  role!: ServingRole;

  @Field(() => Date, {
    nullable: true,
    description:
      'Event time of the oldest feature value this row used: its own entity’s, whatever else the request asked for. Null for an inline row, or an entity with no feature values online.',
  })
  asOf!: Date | null;

  static from(p: Prediction): PredictionType {
    return Object.assign(new PredictionType(), {
      id: p.id,
      entityKey: p.entityKey,
      score: p.score,
      version: ModelVersionType.from(p.version),
      role: p.role,
      asOf: p.asOf,
    });
  }
}

@InputType()
export class CreateDeploymentInput {
  @Field({ description: 'Like flight-delay.' })
  endpoint!: string;

  @Field({ description: 'The registered model it serves.' })
  model!: string;

  @Field(() => Float, { nullable: true, description: 'Share of keys sent to a CANARY (0.1).' })
  canaryShare?: number | null;

  @Field(() => Int, { nullable: true, description: 'Micro-batch size limit (32).' })
  maxBatch?: number | null;

  @Field(() => Int, { nullable: true, description: 'Longest wait for a batch to fill, µs (2000).' })
  maxWaitUs?: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'Warm-up calls before a version is ready (10).',
  })
  warmupRequests?: number | null;

  @Field(() => CanaryPolicyInput, { nullable: true, description: 'Defaults: see CanaryPolicy.' })
  canaryPolicy?: CanaryPolicyInput | null;

  @Field(() => AutoscalePolicyInput, {
    nullable: true,
    description:
      'Defaults: 1 to 4 replicas, p99 target 50 ms, queue 8 per replica, up after 2 hot intervals, down after 3 cold, 60 s cool-down.',
  })
  autoscalePolicy?: AutoscalePolicyInput | null;
}

@ObjectType('VersionTraffic', {
  description:
    'What one version of an endpoint answered over a recent window, counted over every api process of the fleet (the figures the canary controller judges).',
})
export class VersionTrafficType {
  /** Local id; the resolver loads the version. */
  versionLocalId!: string;

  @Field(() => Int)
  requests!: number;

  @Field(() => Int)
  errors!: number;

  @Field(() => Float, { description: 'Requests per second over the window.' })
  rate!: number;

  @Field(() => Float, { description: 'errors / requests (0 without requests).' })
  errorRate!: number;

  @Field(() => Float, { nullable: true, description: 'Null without requests.' })
  p99Ms!: number | null;

  static from(
    o: { versionId: string; n: number; errors: number; p99Ms: number | null },
    windowMs: number,
  ): VersionTrafficType {
    return Object.assign(new VersionTrafficType(), {
      versionLocalId: o.versionId,
      requests: o.n,
      errors: o.errors,
      rate: o.n / (windowMs / 1000),
      errorRate: o.n ? o.errors / o.n : 0,
      p99Ms: o.p99Ms,
    });
  }
}
