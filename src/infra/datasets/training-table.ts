import { tableFromIPC, Type } from 'apache-arrow';
import { type Table } from '../../domain/training/tabular';

/** Columns of every snapshot that are not features. */
const NOT_FEATURES = new Set(['entity_key', 'ts', 'label']);

/**
 * A dataset snapshot (Arrow IPC) as a training table: every numeric or boolean feature
 * column, nulls as NaN; label 1 when > 0.5. Rows without a label are left out.
 */
export function readTrainingTable(bytes: Uint8Array): { table: Table; ts: Float64Array } {
  const t = tableFromIPC(bytes);
  const label = t.getChild('label');
  const ts = t.getChild('ts');
  if (!label || !ts) throw new Error('not a dataset snapshot: it needs ts and label columns');
  const features = t.schema.fields.filter(
    (f) =>
      !NOT_FEATURES.has(f.name) &&
      [Type.Float, Type.Int, Type.Bool].includes(f.type.typeId as Type),
  );
  const keep: number[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const y = label.get(i) as number | null;
    if (y !== null && !Number.isNaN(y)) keep.push(i);
  }
  const n = keep.length;
  const d = features.length;
  const x = new Float64Array(n * d);
  const y = new Float64Array(n);
  const times = new Float64Array(n);
  features.forEach((f, j) => {
    const col = t.getChild(f.name)!;
    keep.forEach((row, i) => {
      const v = col.get(row) as number | boolean | bigint | null;
      x[i * d + j] = v === null ? NaN : Number(v);
    });
  });
  keep.forEach((row, i) => {
    y[i] = (label.get(row) as number) > 0.5 ? 1 : 0;
    const v = ts.get(row) as number | Date | bigint;
    times[i] = v instanceof Date ? v.getTime() : Number(v);
  });
  return { table: { n, d, x, y, names: features.map((f) => f.name) }, ts: times };
}
