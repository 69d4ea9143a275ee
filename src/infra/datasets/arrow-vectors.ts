import { type DataType, makeData, makeVector, type Vector } from 'apache-arrow';

/**
 * A fixed-width Arrow vector over `data` as it is (no value-by-value builder), row i null
 * where `valid(i)` is false. The validity bitmap is always written, as dataset snapshots
 * always had it: their bytes, and so their content hashes, stay what they were.
 */
export function nullableVector(
  type: DataType,
  data: ArrayLike<unknown>,
  valid: (i: number) => boolean,
): Vector {
  const n = data.length;
  const bitmap = new Uint8Array(Math.ceil(n / 8));
  let nullCount = 0;
  for (let i = 0; i < n; i++) {
    if (valid(i)) bitmap[i >> 3] |= 1 << (i & 7);
    else nullCount++;
  }
  return makeVector(makeData({ type, length: n, nullCount, nullBitmap: bitmap, data } as never));
}
