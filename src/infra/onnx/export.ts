import { onnx } from 'onnx-proto';
import { type GbdtState } from '../../domain/training/learners/gbdt';
import { type DenseState } from '../../domain/training/learners/linear';
import { type Standardizer } from '../../domain/training/tabular';

/**
 * ONNX graphs of the built-in models. Input `features` (float32, N × d, NaN = missing),
 * output `probability` (float32, N × 1). The preprocessing the model was trained with is in
 * the graph (IsNaN → Where mean → Sub mean → Div std, the steps `standardize` emulates), so
 * serving feeds raw feature values and never re-implements it.
 */
export const INPUT = 'features';
export const OUTPUT = 'probability';
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function tensor(name: string, dims: number[], values: ArrayLike<number>): onnx.ITensorProto {
  return { name, dims, dataType: FLOAT, floatData: Array.from(values, (v) => Math.fround(v)) };
}

function io(name: string, d: number | null): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: [{ dimParam: 'N' }, d === null ? { dimParam: 'D' } : { dimValue: d }] },
      },
    },
  };
}

function preprocessing(s: Standardizer): { nodes: onnx.INodeProto[]; init: onnx.ITensorProto[] } {
  const d = s.mean.length;
  return {
    init: [tensor('mean', [1, d], s.mean), tensor('std', [1, d], s.std)],
    nodes: [
      { opType: 'IsNaN', input: [INPUT], output: ['missing'] },
      { opType: 'Where', input: ['missing', 'mean', INPUT], output: ['imputed'] },
      { opType: 'Sub', input: ['imputed', 'mean'], output: ['centered'] },
      { opType: 'Div', input: ['centered', 'std'], output: ['z'] },
    ],
  };
}

/** Metadata key holding the feature refs of the input columns, in order (JSON list). */
export const FEATURES_METADATA = 'aether.features';

function model(
  name: string,
  features: readonly string[],
  nodes: onnx.INodeProto[],
  init: onnx.ITensorProto[],
  ml: boolean,
): Uint8Array {
  const d = features.length;
  const m = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'aether',
    metadataProps: [{ key: FEATURES_METADATA, value: JSON.stringify(features) }],
    opsetImport: [
      { domain: '', version: 17 },
      ...(ml ? [{ domain: 'ai.onnx.ml', version: 3 }] : []),
    ],
    graph: { name, node: nodes, initializer: init, input: [io(INPUT, d)], output: [io(OUTPUT, 1)] },
  });
  return onnx.ModelProto.encode(m).finish();
}

/** Logistic regression and MLPs: MatMul + Add per layer, Relu between, Sigmoid at the end. */
export function exportDense(
  name: string,
  features: readonly string[],
  s: Standardizer,
  state: DenseState,
): Uint8Array {
  const pre = preprocessing(s);
  const nodes = [...pre.nodes];
  const init = [...pre.init];
  let x = 'z';
  state.layers.forEach((l, i) => {
    init.push(tensor(`w${i}`, [l.in, l.out], l.w), tensor(`b${i}`, [l.out], l.b));
    nodes.push(
      { opType: 'MatMul', input: [x, `w${i}`], output: [`mm${i}`] },
      { opType: 'Add', input: [`mm${i}`, `b${i}`], output: [`a${i}`] },
    );
    x = `a${i}`;
    if (i < state.layers.length - 1) {
      nodes.push({ opType: 'Relu', input: [x], output: [`r${i}`] });
      x = `r${i}`;
    }
  });
  nodes.push({ opType: 'Sigmoid', input: [x], output: [OUTPUT] });
  return model(name, features, nodes, init, false);
}

/** Boosted trees as ai.onnx.ml TreeEnsembleRegressor (sum of leaves + base), then Sigmoid. */
export function exportGbdt(
  name: string,
  features: readonly string[],
  s: Standardizer,
  state: GbdtState,
): Uint8Array {
  const pre = preprocessing(s);
  const ints = (n: string, v: number[]): onnx.IAttributeProto => ({
    name: n,
    type: onnx.AttributeProto.AttributeType.INTS,
    ints: v,
  });
  const floats = (n: string, v: number[]): onnx.IAttributeProto => ({
    name: n,
    type: onnx.AttributeProto.AttributeType.FLOATS,
    floats: v.map((x) => Math.fround(x)),
  });
  const strings = (n: string, v: string[]): onnx.IAttributeProto => ({
    name: n,
    type: onnx.AttributeProto.AttributeType.STRINGS,
    strings: v.map((x) => Buffer.from(x)),
  });
  const a = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    features: [] as number[],
    values: [] as number[],
    modes: [] as string[],
    trueIds: [] as number[],
    falseIds: [] as number[],
    missingTrue: [] as number[],
    tTree: [] as number[],
    tNode: [] as number[],
    tWeight: [] as number[],
  };
  state.trees.forEach((tree, t) => {
    tree.forEach((n, k) => {
      const leaf = n.feature < 0;
      a.treeIds.push(t);
      a.nodeIds.push(k);
      a.features.push(leaf ? 0 : n.feature);
      a.values.push(leaf ? 0 : n.threshold);
      a.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      a.trueIds.push(leaf ? 0 : n.left);
      a.falseIds.push(leaf ? 0 : n.right);
      a.missingTrue.push(0);
      if (leaf) {
        a.tTree.push(t);
        a.tNode.push(k);
        a.tWeight.push(n.value);
      }
    });
  });
  const ensemble: onnx.INodeProto = {
    opType: 'TreeEnsembleRegressor',
    domain: 'ai.onnx.ml',
    input: ['z'],
    output: ['score'],
    attribute: [
      { name: 'n_targets', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
      {
        name: 'aggregate_function',
        type: onnx.AttributeProto.AttributeType.STRING,
        s: Buffer.from('SUM'),
      },
      {
        name: 'post_transform',
        type: onnx.AttributeProto.AttributeType.STRING,
        s: Buffer.from('NONE'),
      },
      floats('base_values', [state.base]),
      ints('nodes_treeids', a.treeIds),
      ints('nodes_nodeids', a.nodeIds),
      ints('nodes_featureids', a.features),
      floats('nodes_values', a.values),
      strings('nodes_modes', a.modes),
      ints('nodes_truenodeids', a.trueIds),
      ints('nodes_falsenodeids', a.falseIds),
      ints('nodes_missing_value_tracks_true', a.missingTrue),
      ints('target_treeids', a.tTree),
      ints('target_nodeids', a.tNode),
      ints(
        'target_ids',
        a.tTree.map(() => 0),
      ),
      floats('target_weights', a.tWeight),
    ],
  };
  const nodes = [...pre.nodes, ensemble, { opType: 'Sigmoid', input: ['score'], output: [OUTPUT] }];
  return model(name, features, nodes, pre.init, true);
}
