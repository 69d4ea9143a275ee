import { type DuckDBConnection } from '@duckdb/node-api';

/**
 * A statement's physical plan in DuckDB, one line per operator in pre-order: its name, and
 * what decides the work it does (a join's type and conditions, a window's definition, a
 * grouping's keys, a scan's table), not its projections or aggregates. Projection operators
 * are left out (their inputs take their place): they compute expressions row by row, which
 * is where the dialects differ (DuckDB's mean is its ordered sum over a count, Trino's an
 * AVG), and decide no join, grouping, window or exchange.
 */
export async function planShape(duck: DuckDBConnection, sql: string): Promise<string[]> {
  const [[, json]] = (await duck.runAndReadAll(`EXPLAIN (FORMAT JSON) ${sql}`)).getRows();
  interface Operator {
    name: string;
    children: Operator[];
    extra_info: Record<string, unknown>;
  }
  const shape: string[] = [];
  const walk = (o: Operator, depth: number): void => {
    if (o.name === 'PROJECTION') return o.children.forEach((c) => walk(c, depth));
    const x = o.extra_info;
    const what = [x['Join Type'], x.Conditions, x.Groups, x.Table, x['CTE Name'], x['CTE Index']];
    if (o.name.includes('WINDOW')) what.push(x.Projections);
    shape.push(`${depth} ${o.name} ${JSON.stringify(what)}`);
    o.children.forEach((c) => walk(c, depth + 1));
  };
  (JSON.parse(String(json)) as Operator[]).forEach((o) => walk(o, 0));
  return shape;
}

/**
 * The shape the distributed sizing rests on (docs/adr/0032): every join an equi-join on the
 * entity or the label row, every window partitioned by the entity, nothing a distributed
 * engine would broadcast or run as a nested loop. `problems` names the lines that break it.
 */
export function distributableShape(shape: readonly string[]): { ok: boolean; problems: string[] } {
  const problems = shape.filter(
    (l) =>
      /NESTED_LOOP|CROSS_PRODUCT|BLOCKWISE|PIECEWISE/.test(l.split(' ')[1]) ||
      (l.includes('HASH_JOIN') && !/entity_key = entity_key|row_id = row_id/.test(l)) ||
      (l.includes('WINDOW') && !/PARTITION BY entity_key/.test(l)),
  );
  return { ok: problems.length === 0, problems };
}
