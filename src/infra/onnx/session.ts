import * as ort from 'onnxruntime-node';
import { INPUT, OUTPUT } from './export';

/** Runs an exported model on rows of raw feature values (NaN = missing). */
export async function predictOnnx(
  modelBytes: Uint8Array,
  x: Float64Array,
  n: number,
  d: number,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(modelBytes);
  try {
    const out = await session.run({
      [INPUT]: new ort.Tensor('float32', Float32Array.from(x), [n, d]),
    });
    return out[OUTPUT].data as Float32Array;
  } finally {
    await session.release();
  }
}
