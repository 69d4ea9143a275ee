import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { InvalidOnnxError, type ModelInspector } from '../../domain/registry/ports';
import { type ModelSignature, type TensorSignature } from '../../domain/registry/model';
import { auc, logLoss } from '../../domain/training/metrics';
import { readTrainingTable } from '../datasets/training-table';
import { FEATURES_METADATA } from './export';

const LATENCY_CALLS = 200;

/** ONNX models read with onnx-proto and run with onnxruntime-node. */
export class OnnxModelInspector implements ModelInspector {
  signature(bytes: Uint8Array): ModelSignature {
    let m: onnx.ModelProto;
    try {
      m = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new InvalidOnnxError(`not an ONNX model: ${(e as Error).message}`);
    }
    if (!m.graph || !m.graph.input?.length || !m.graph.output?.length)
      throw new InvalidOnnxError('the ONNX model has no graph inputs or outputs');
    const initializers = new Set((m.graph.initializer ?? []).map((t) => t.name));
    const tensor = (v: onnx.IValueInfoProto): TensorSignature => ({
      name: v.name ?? '',
      type: onnx.TensorProto.DataType[v.type?.tensorType?.elemType ?? 0] ?? 'UNDEFINED',
      shape: (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
        d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0
          ? Number(d.dimValue)
          : null,
      ),
    });
    const meta = (m.metadataProps ?? []).find((p) => p.key === FEATURES_METADATA)?.value;
    let features: string[] | null = null;
    if (meta) {
      const parsed = JSON.parse(meta) as unknown;
      if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) features = parsed;
    }
    return {
      inputs: m.graph.input.filter((i) => !initializers.has(i.name ?? '')).map(tensor),
      outputs: m.graph.output.map(tensor),
      features,
    };
  }

  async evaluate(
    bytes: Uint8Array,
    dataset: Uint8Array,
  ): Promise<{ auc: number; log_loss: number; p99_latency_ms: number; rows: number }> {
    const { table } = readTrainingTable(dataset);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes);
    } catch (e) {
      throw new InvalidOnnxError(`onnxruntime cannot load the model: ${(e as Error).message}`);
    }
    try {
      const input = session.inputNames[0];
      const output = session.outputNames[0];
      const x = Float32Array.from(table.x);
      const out = await session.run({ [input]: new ort.Tensor('float32', x, [table.n, table.d]) });
      const p = Array.from(out[output].data as Float32Array);
      // Single-row calls, as a model server makes them.
      const times: number[] = [];
      for (let i = 0; i < Math.min(LATENCY_CALLS, table.n); i++) {
        const row = x.subarray(i * table.d, (i + 1) * table.d);
        const t0 = performance.now();
        await session.run({
          [input]: new ort.Tensor('float32', Float32Array.from(row), [1, table.d]),
        });
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return {
        auc: auc(table.y, p),
        log_loss: logLoss(table.y, p),
        p99_latency_ms: times.length
          ? times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]
          : 0,
        rows: table.n,
      };
    } finally {
      await session.release();
    }
  }
}
