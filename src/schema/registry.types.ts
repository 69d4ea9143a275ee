import { eventCursor } from '../domain/events/event-bus';
import { EVENT_CURSOR_DESCRIPTION } from './node.types';
import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { LineageDirection, type LineageGraph } from '../domain/lineage/lineage';
import {
  type Evaluation,
  type Gate,
  type GateResult,
  type Model,
  ModelState,
  type ModelVersion,
  type TensorSignature,
  type Transition,
  TRANSITIONS,
} from '../domain/registry/model';
import { type ModelEvent } from '../domain/registry/model-registry.service';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';
import { ArtifactType } from './training.types';

registerEnumType(ModelState, { name: 'ModelState' });
registerEnumType(LineageDirection, { name: 'LineageDirection' });

export enum GateKind {
  AUC_VS_PRODUCTION = 'AUC_VS_PRODUCTION',
  MAX_P99_LATENCY_MS = 'MAX_P99_LATENCY_MS',
  MIN_METRIC = 'MIN_METRIC',
}
registerEnumType(GateKind, { name: 'GateKind' });

@ObjectType('Gate', {
  description:
    'A condition to enter a state: AUC_VS_PRODUCTION (AUC ≥ production’s + threshold, on the same snapshot), MAX_P99_LATENCY_MS, MIN_METRIC (metric ≥ threshold).',
})
export class GateType {
  @Field(() => GateKind)
  kind!: GateKind;

  @Field(() => ModelState)
  into!: ModelState;

  @Field(() => Float)
  threshold!: number;

  @Field(() => String, { nullable: true })
  metric!: string | null;

  static from(g: Gate): GateType {
    return Object.assign(new GateType(), {
      ...g,
      kind: g.kind as GateKind,
      metric: g.metric ?? null,
    });
  }
}

@InputType()
export class GateInput {
  @Field(() => GateKind)
  kind!: GateKind;

  @Field(() => ModelState)
  into!: ModelState;

  @Field(() => Float)
  threshold!: number;

  @Field(() => String, { nullable: true })
  metric?: string | null;
}

@ObjectType('GateResult')
export class GateResultType extends GateType {
  @Field()
  passed!: boolean;

  @Field(() => Float, { nullable: true })
  actual!: number | null;

  @Field(() => Float, { nullable: true, description: 'Null when nothing was required.' })
  required!: number | null;

  @Field()
  detail!: string;

  static fromResult(r: GateResult): GateResultType {
    return Object.assign(new GateResultType(), {
      ...GateType.from(r.gate),
      passed: r.passed,
      actual: r.actual,
      required: Number.isFinite(r.required) ? r.required : null,
      detail: r.detail,
    });
  }
}

@ObjectType('ModelTransition', {
  description: 'One recorded move of a version: who, when, why, gates.',
})
export class ModelTransitionType {
  @Field(() => ModelState, { nullable: true })
  from!: ModelState | null;

  @Field(() => ModelState)
  to!: ModelState;

  @Field()
  actor!: string;

  @Field()
  reason!: string;

  @Field(() => [GateResultType])
  gates!: GateResultType[];

  @Field()
  at!: Date;

  static from(t: Transition): ModelTransitionType {
    return Object.assign(new ModelTransitionType(), {
      from: t.from,
      to: t.to,
      actor: t.actor,
      reason: t.reason,
      gates: t.gates.map(GateResultType.fromResult),
      at: new Date(t.at),
    });
  }
}

@ObjectType('ModelEvaluation', { description: 'A version evaluated on a held-out snapshot.' })
export class ModelEvaluationType {
  @Field(() => ID)
  datasetId!: string;

  @Field(() => GraphQLJSONObject, { description: 'auc, log_loss, p99_latency_ms, rows.' })
  metrics!: Record<string, number>;

  @Field()
  at!: Date;

  static from(e: Evaluation): ModelEvaluationType {
    return Object.assign(new ModelEvaluationType(), {
      datasetId: toGlobalId('DatasetSnapshot', e.datasetId),
      metrics: e.metrics,
      at: new Date(e.at),
    });
  }
}

@ObjectType('TensorSignature')
export class TensorSignatureType {
  @Field()
  name!: string;

  @Field()
  type!: string;

  @Field(() => [Int], { nullable: 'items', description: 'Null for a symbolic dimension.' })
  shape!: (number | null)[];

  static from(t: TensorSignature): TensorSignatureType {
    return Object.assign(new TensorSignatureType(), t);
  }
}

@ObjectType('ModelSignature', { description: 'Read from the ONNX file at registration.' })
export class ModelSignatureType {
  @Field(() => [TensorSignatureType])
  inputs!: TensorSignatureType[];

  @Field(() => [TensorSignatureType])
  outputs!: TensorSignatureType[];

  @Field(() => [String], { nullable: true, description: 'Feature refs of the input columns.' })
  features!: readonly string[] | null;
}

@ObjectType('ModelTrainer')
export class ModelTrainerType {
  @Field()
  kind!: string;

  @Field()
  name!: string;

  @Field(() => String, { nullable: true })
  version!: string | null;
}

@ObjectType('ModelVersion', { implements: Node, description: 'An immutable, governed model.' })
export class ModelVersionType extends Node {
  localId!: string;
  modelLocalId!: string;
  runLocalId!: string | null;
  datasetLocalId!: string | null;
  featureViewVersionIds!: string[];

  @Field()
  model!: string;

  @Field(() => Int)
  version!: number;

  @Field(() => ModelState)
  state!: ModelState;

  @Field(() => [ModelState], { description: 'States a transition may move it to from here.' })
  allowedTransitions!: ModelState[];

  @Field(() => ArtifactType)
  artifact!: ArtifactType;

  @Field(() => String, { nullable: true, description: 'Content hash of the training snapshot.' })
  datasetHash!: string | null;

  @Field(() => [String])
  featureRefs!: readonly string[];

  @Field(() => GraphQLJSONObject)
  hyperparameters!: Record<string, unknown>;

  @Field(() => GraphQLJSONObject, { description: 'The run’s final metrics.' })
  metrics!: Record<string, number>;

  @Field(() => String, { nullable: true })
  gitCommit!: string | null;

  @Field(() => ModelTrainerType, { nullable: true })
  trainer!: ModelTrainerType | null;

  @Field(() => ModelSignatureType)
  signature!: ModelSignatureType;

  @Field()
  createdAt!: Date;

  @Field()
  stateChangedAt!: Date;

  static from(v: ModelVersion): ModelVersionType {
    const t = new ModelVersionType();
    t.id = toGlobalId('ModelVersion', v.id);
    t.localId = v.id;
    t.modelLocalId = v.modelId;
    t.runLocalId = v.runId;
    t.datasetLocalId = v.datasetId;
    t.featureViewVersionIds = v.featureViewVersionIds;
    t.model = v.modelName;
    t.version = v.version;
    t.state = v.state;
    t.allowedTransitions = TRANSITIONS[v.state].filter((s) => s !== ModelState.VALIDATED);
    t.artifact = ArtifactType.from(v.artifact);
    t.datasetHash = v.datasetHash;
    t.featureRefs = v.featureRefs;
    t.hyperparameters = v.hyperparameters;
    t.metrics = v.metrics;
    t.gitCommit = v.gitCommit;
    t.trainer = v.trainer ? Object.assign(new ModelTrainerType(), v.trainer) : null;
    t.signature = Object.assign(new ModelSignatureType(), {
      inputs: v.signature.inputs.map(TensorSignatureType.from),
      outputs: v.signature.outputs.map(TensorSignatureType.from),
      features: v.signature.features,
    });
    t.createdAt = v.createdAt;
    t.stateChangedAt = v.stateChangedAt;
    return t;
  }
}

@ObjectType('Model', { implements: Node })
export class ModelType extends Node {
  localId!: string;
  productionVersionLocalId!: string | null;

  @Field()
  name!: string;

  @Field(() => [GateType])
  gates!: GateType[];

  @Field()
  createdAt!: Date;

  static from(m: Model): ModelType {
    const t = new ModelType();
    t.id = toGlobalId('Model', m.id);
    t.localId = m.id;
    t.productionVersionLocalId = m.productionVersionId;
    t.name = m.name;
    t.gates = m.gates.map(GateType.from);
    t.createdAt = m.createdAt;
    return t;
  }
}

@ObjectType()
export class ModelConnection extends Connection(ModelType) {}

@ObjectType('ModelEvent')
export class ModelEventType {
  @Field()
  model!: string;

  @Field(() => ID)
  versionId!: string;

  @Field(() => Int)
  version!: number;

  @Field(() => ModelState, { nullable: true })
  from!: ModelState | null;

  @Field(() => ModelState)
  to!: ModelState;

  @Field()
  actor!: string;

  @Field()
  reason!: string;

  @Field()
  at!: Date;

  @Field(() => String, { nullable: true, description: EVENT_CURSOR_DESCRIPTION })
  cursor!: string | null;

  static from(e: ModelEvent): ModelEventType {
    return Object.assign(new ModelEventType(), {
      ...e,
      versionId: toGlobalId('ModelVersion', e.versionId),
      at: new Date(e.at),
      cursor: eventCursor(e),
    });
  }
}

@ObjectType('LineageNode')
export class LineageNodeType {
  @Field(() => ID, { description: 'The object’s global ID (Source nodes are not fetchable).' })
  id!: string;

  @Field({ description: 'Source, FeatureViewVersion, DatasetSnapshot, Run, ModelVersion…' })
  kind!: string;

  @Field()
  label!: string;

  @Field(() => Int, { description: 'Hops from the start.' })
  depth!: number;
}

@ObjectType('LineageEdge', { description: '`from` was derived into `to`.' })
export class LineageEdgeType {
  @Field(() => ID)
  from!: string;

  @Field(() => ID)
  to!: string;

  @Field()
  relation!: string;
}

@ObjectType('Lineage')
export class LineageType {
  @Field(() => [LineageNodeType])
  nodes!: LineageNodeType[];

  @Field(() => [LineageEdgeType])
  edges!: LineageEdgeType[];

  static from(g: LineageGraph): LineageType {
    const gid = (node: string) => {
      const i = node.indexOf(':');
      return toGlobalId(node.slice(0, i), node.slice(i + 1));
    };
    return Object.assign(new LineageType(), {
      nodes: g.nodes.map((n) =>
        Object.assign(new LineageNodeType(), {
          id: gid(n.id),
          kind: n.kind,
          label: n.label,
          depth: n.depth,
        }),
      ),
      edges: g.edges.map((e) =>
        Object.assign(new LineageEdgeType(), {
          from: gid(e.from),
          to: gid(e.to),
          relation: e.relation,
        }),
      ),
    });
  }
}
