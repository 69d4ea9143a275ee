import { BinClosure, type FeatureValue, type Transform } from './feature-definition';

/**
 * The one implementation of every row-level transformation. The online (streaming) and
 * offline (backfill, point-in-time) paths both call `applyTransform`; there is no second
 * copy to drift.
 */
export function applyTransform(t: Transform, raw: FeatureValue): FeatureValue {
  if (raw === null) return null;
  switch (t.kind) {
    case 'IDENTITY':
      return raw;
    case 'BIN':
      return typeof raw === 'number' ? binIndex(raw, t.edges, t.closed) : null;
    case 'CATEGORY_INDEX': {
      const i = t.categories.indexOf(String(raw));
      return i >= 0 ? i : t.categories.length;
    }
  }
}

/**
 * Bucket of `x` for ascending `edges`. LEFT closure: [e_i, e_{i+1}); RIGHT: (e_i, e_{i+1}].
 * With edges [0,18,35,50,100]: 18 → 1 under LEFT ([18,35)) and 0 under RIGHT ((0,18]).
 */
export function binIndex(x: number, edges: number[], closed: BinClosure): number | null {
  if (!Number.isFinite(x) || edges.length < 2) return null;
  // Binary search for the bucket; the comparison is the only place closure matters.
  let lo = 0;
  let hi = edges.length - 1;
  const inLower = (i: number) => (closed === BinClosure.LEFT ? x >= edges[i] : x > edges[i]);
  const inUpper = (i: number) =>
    closed === BinClosure.LEFT ? x < edges[i + 1] : x <= edges[i + 1];
  if (!inLower(0) || !inUpper(edges.length - 2)) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (inUpper(mid)) hi = mid;
    else lo = mid + 1;
  }
  return inLower(lo) ? lo : null;
}

export function validateTransform(t: Transform): string | null {
  if (t.kind === 'BIN') {
    if (t.closed !== BinClosure.LEFT && t.closed !== BinClosure.RIGHT)
      return 'BIN needs an explicit closure, LEFT or RIGHT';
    if (t.edges.length < 2) return 'BIN needs at least two edges';
    for (let i = 1; i < t.edges.length; i++) {
      if (!(t.edges[i] > t.edges[i - 1])) return 'BIN edges must be strictly ascending';
    }
  }
  if (t.kind === 'CATEGORY_INDEX' && new Set(t.categories).size !== t.categories.length) {
    return 'CATEGORY_INDEX categories must be distinct';
  }
  return null;
}
