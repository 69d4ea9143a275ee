import { onnx } from 'onnx-proto';
import { FEATURES_METADATA } from '../../src/infra/onnx/export';

/**
 * Hand-built ONNX models that misbehave on purpose, for the canary controller and the
 * autoscaler: each takes `features` (a [N, features.length] float input named `features`)
 * and answers `probability`, like the platform's own exports.
 */
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const io = (name: string, width: number): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } },
  },
});
const model = (
  name: string,
  features: readonly string[],
  nodes: onnx.INodeProto[],
  init: onnx.ITensorProto[],
): Uint8Array =>
  onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      metadataProps: [{ key: FEATURES_METADATA, value: JSON.stringify(features) }],
      graph: {
        name,
        node: nodes,
        initializer: init,
        input: [io('features', features.length)],
        output: [io('probability', 1)],
      },
    }),
  ).finish();
const ints = (name: string, values: number[]): onnx.ITensorProto => ({
  name,
  dims: [values.length],
  dataType: INT64,
  int64Data: values,
});
const axis = (i: number): onnx.IAttributeProto => ({
  name: 'axis',
  type: onnx.AttributeProto.AttributeType.INT,
  i,
});

/**
 * Deliberately slow whatever the machine's load: a Loop of `iterations` additions (30,000: about
 * 28 ms a call here) whose result is multiplied by zero, so it answers a constant 0.5.
 */
export function slowModel(features: readonly string[], iterations = 30_000): Uint8Array {
  const scalar = (name: string, elemType: number): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType, shape: { dim: [] } } },
  });
  const one = (name: string): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  const BOOL = onnx.TensorProto.DataType.BOOL;
  const body: onnx.IGraphProto = {
    name: 'body',
    node: [
      { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] },
      { opType: 'Add', input: ['v_in', 'inc'], output: ['v_out'] },
    ],
    initializer: [{ name: 'inc', dims: [1], dataType: FLOAT, floatData: [1] }],
    input: [scalar('iter', INT64), scalar('cond_in', BOOL), one('v_in')],
    output: [scalar('cond_out', BOOL), one('v_out')],
  };
  return model(
    'slow',
    features,
    [
      {
        opType: 'Loop',
        input: ['M', 'cond', 'v0'],
        output: ['vfinal'],
        attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
      },
      { opType: 'Gather', input: ['features', 'c0'], output: ['a'], attribute: [axis(1)] },
      { opType: 'Mul', input: ['a', 'zero'], output: ['za'] },
      { opType: 'Mul', input: ['vfinal', 'zero'], output: ['zv'] },
      { opType: 'Add', input: ['za', 'zv'], output: ['s'] },
      { opType: 'Sigmoid', input: ['s'], output: ['probability'] },
    ],
    [
      { name: 'M', dims: [], dataType: INT64, int64Data: [iterations] },
      { name: 'cond', dims: [], dataType: BOOL, int32Data: [1] },
      { name: 'v0', dims: [1], dataType: FLOAT, floatData: [0] },
      ints('c0', [0]),
      { name: 'zero', dims: [1], dataType: FLOAT, floatData: [0] },
    ],
  );
}

/** Looks feature b up in a 16-entry table: fine for b in [0, 16), a runtime error beyond. */
export function failingModel(features: readonly string[]): Uint8Array {
  return model(
    'failing',
    features,
    [
      { opType: 'Gather', input: ['features', 'c1'], output: ['b'], attribute: [axis(1)] },
      {
        opType: 'Cast',
        input: ['b'],
        output: ['idx'],
        attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: INT64 }],
      },
      { opType: 'Gather', input: ['table', 'idx'], output: ['v'] },
      { opType: 'Sigmoid', input: ['v'], output: ['probability'] },
    ],
    [
      ints('c1', [1]),
      { name: 'table', dims: [16], dataType: FLOAT, floatData: new Array<number>(16).fill(0.5) },
    ],
  );
}
