import { type DataSource } from 'typeorm';
import {
  LineageDirection,
  type LineageEdge,
  type LineageNode,
  type LineageRepository,
} from '../../../domain/lineage/lineage';

/**
 * Walks lineage_edge (kept by triggers, see the model-registry migration) with one
 * recursive query: each level is one index lookup per frontier node inside Postgres, and
 * the walk stops at `depth` and after `limit` nodes.
 */
export class SqlLineageRepository implements LineageRepository {
  constructor(private readonly ds: DataSource) {}

  async exists(node: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(`SELECT 1 FROM lineage_node WHERE id = $1`, [node]);
    return rows.length > 0;
  }

  async walk(
    start: string,
    direction: LineageDirection.UPSTREAM | LineageDirection.DOWNSTREAM,
    depth: number,
    limit: number,
  ): Promise<LineageNode[]> {
    const [near, far] =
      direction === LineageDirection.DOWNSTREAM
        ? ['from_node', 'to_node']
        : ['to_node', 'from_node'];
    const rows: { id: string; kind: string; label: string; depth: number }[] = await this.ds.query(
      `WITH RECURSIVE walk(id, depth) AS (
         SELECT $1::text, 0
         UNION
         SELECT e.${far}, w.depth + 1 FROM walk w JOIN lineage_edge e ON e.${near} = w.id
         WHERE w.depth < $2
       ),
       nearest AS (SELECT id, min(depth) AS depth FROM walk GROUP BY id ORDER BY 2, 1 LIMIT $3)
       SELECT n.id, n.kind, n.label, nearest.depth FROM nearest JOIN lineage_node n ON n.id = nearest.id`,
      [start, depth, limit],
    );
    return rows.map((r) => ({ ...r, depth: Number(r.depth) }));
  }

  async edgesAmong(nodes: readonly string[]): Promise<LineageEdge[]> {
    if (!nodes.length) return [];
    const rows: { from_node: string; to_node: string; relation: string }[] = await this.ds.query(
      `SELECT from_node, to_node, relation FROM lineage_edge
       WHERE from_node = ANY($1::text[]) AND to_node = ANY($1::text[])`,
      [nodes],
    );
    return rows.map((r) => ({ from: r.from_node, to: r.to_node, relation: r.relation }));
  }

  async search(text: string, kinds: readonly string[], limit: number): Promise<LineageNode[]> {
    // LIKE's wildcards in the text are matched literally.
    const pattern = text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
    const rows: { id: string; kind: string; label: string }[] = await this.ds.query(
      `SELECT id, kind, label FROM lineage_node
       WHERE (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
         AND (lower(label) LIKE '%' || $1 || '%' OR lower(id) LIKE '%' || $1 || '%')
       ORDER BY lower(label) LIKE $1 || '%' DESC, length(label), created_at DESC, id
       LIMIT $3`,
      [pattern, kinds, limit],
    );
    return rows.map((r) => ({ ...r, depth: 0 }));
  }
}
