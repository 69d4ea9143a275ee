import { InvalidInputError } from '../shared/domain-error';

export enum LineageDirection {
  UPSTREAM = 'UPSTREAM',
  DOWNSTREAM = 'DOWNSTREAM',
  BOTH = 'BOTH',
}

/** A node of the lineage graph: `Kind:id`, the GraphQL type and the local id (or name). */
export interface LineageNode {
  id: string;
  kind: string;
  label: string;
  /** Hops from the start (0 for the start). */
  depth: number;
}

/** `from` was derived into `to` (edges point downstream). */
export interface LineageEdge {
  from: string;
  to: string;
  relation: string;
}

export interface LineageGraph {
  nodes: LineageNode[];
  edges: LineageEdge[];
}

export enum LineageErrorCode {
  LINEAGE_TOO_LARGE = 'LINEAGE_TOO_LARGE',
  INVALID_LINEAGE_QUERY = 'INVALID_LINEAGE_QUERY',
  NODE_NOT_FOUND = 'NODE_NOT_FOUND',
}

export const MAX_DEPTH = 12;
export const MAX_NODES = 5_000;
export const MAX_SEARCH_RESULTS = 100;
/** What a search may ask for by kind: every kind of node the lineage triggers write. */
export const LINEAGE_KINDS = [
  'Source',
  'FeatureViewVersion',
  'DatasetSnapshot',
  'Run',
  'Study',
  'Trial',
  'ModelVersion',
  'Deployment',
  'DriftReport',
  'PerformanceReport',
  'Alert',
  'Retraining',
] as const;

/** Port: a bounded walk, one recursive query per direction. */
export interface LineageRepository {
  exists(node: string): Promise<boolean>;
  /** Nodes within `depth` hops in `direction`; at most `limit` (more means too many). */
  walk(
    start: string,
    direction: LineageDirection.UPSTREAM | LineageDirection.DOWNSTREAM,
    depth: number,
    limit: number,
  ): Promise<LineageNode[]>;
  /** Edges between the given nodes. */
  edgesAmong(nodes: readonly string[]): Promise<LineageEdge[]>;
  /**
   * Nodes whose label or id contains `text` (case-insensitive; every node when empty), of
   * the given kinds (all when empty): label prefixes first, then shorter labels, then newest.
   */
  search(text: string, kinds: readonly string[], limit: number): Promise<LineageNode[]>;
}

/** Lineage walks: bounded in depth and size, with a clear error past either bound. */
export class LineageService {
  constructor(private readonly repo: LineageRepository) {}

  async lineage(
    start: string,
    direction: LineageDirection,
    depth: number,
    limit: number,
  ): Promise<LineageGraph> {
    if (!Number.isInteger(depth) || depth < 1 || depth > MAX_DEPTH)
      throw new InvalidInputError(
        LineageErrorCode.INVALID_LINEAGE_QUERY,
        `depth must be an integer from 1 to ${MAX_DEPTH}`,
        { max: MAX_DEPTH },
      );
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_NODES)
      throw new InvalidInputError(
        LineageErrorCode.INVALID_LINEAGE_QUERY,
        `limit must be an integer from 1 to ${MAX_NODES}`,
        { max: MAX_NODES },
      );
    if (!(await this.repo.exists(start)))
      throw new InvalidInputError(
        LineageErrorCode.NODE_NOT_FOUND,
        `${start} is not in the lineage graph`,
      );
    const dirs =
      direction === LineageDirection.BOTH
        ? ([LineageDirection.UPSTREAM, LineageDirection.DOWNSTREAM] as const)
        : [direction];
    const byId = new Map<string, LineageNode>();
    for (const d of dirs) {
      for (const n of await this.repo.walk(start, d, depth, limit + 1)) {
        const seen = byId.get(n.id);
        if (!seen || n.depth < seen.depth) byId.set(n.id, n);
      }
      if (byId.size > limit) throw tooLarge(limit, depth);
    }
    const nodes = [...byId.values()].sort((a, b) => a.depth - b.depth || a.id.localeCompare(b.id));
    return { nodes, edges: await this.repo.edgesAmong(nodes.map((n) => n.id)) };
  }

  /** Finds nodes to start a walk from, by a piece of their label or id (depth 0 each). */
  async search(text: string, kinds: readonly string[], limit: number): Promise<LineageNode[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_RESULTS)
      throw new InvalidInputError(
        LineageErrorCode.INVALID_LINEAGE_QUERY,
        `first must be an integer from 1 to ${MAX_SEARCH_RESULTS}`,
        { max: MAX_SEARCH_RESULTS },
      );
    const unknown = kinds.filter((k) => !(LINEAGE_KINDS as readonly string[]).includes(k));
    if (unknown.length)
      throw new InvalidInputError(
        LineageErrorCode.INVALID_LINEAGE_QUERY,
        `unknown lineage kinds: ${unknown.join(', ')} (known: ${LINEAGE_KINDS.join(', ')})`,
        { unknown, known: [...LINEAGE_KINDS] },
      );
    return this.repo.search(text.trim(), [...new Set(kinds)], limit);
  }
}

function tooLarge(limit: number, depth: number) {
  return new InvalidInputError(
    LineageErrorCode.LINEAGE_TOO_LARGE,
    `More than ${limit} nodes within depth ${depth}: lower the depth or raise the limit (at most ${MAX_NODES})`,
    { limit, depth },
  );
}
