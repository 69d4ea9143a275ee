import { type DataSource } from 'typeorm';
import { type Page, type PageRequest, toPage } from '../../../domain/shared/pagination';

/**
 * One Relay page of `table` in (created_at, id) order: an index range scan reading
 * limit + 1 rows. `conds` are extra SQL conditions whose parameters are `params` ($1…).
 */
export async function sqlKeysetPage<R>(
  ds: DataSource,
  table: string,
  conds: string[],
  params: unknown[],
  req: PageRequest,
): Promise<Page<R>> {
  const where = [...conds];
  const args = [...params];
  if (req.after) {
    args.push(req.after.createdAt, req.after.id);
    where.push(`(created_at, id) > ($${args.length - 1}, $${args.length})`);
  }
  if (req.before) {
    args.push(req.before.createdAt, req.before.id);
    where.push(`(created_at, id) < ($${args.length - 1}, $${args.length})`);
  }
  const dir = req.backward ? 'DESC' : 'ASC';
  args.push(req.limit + 1);
  const rows: R[] = await ds.query(
    `SELECT * FROM ${table} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY created_at ${dir}, id ${dir} LIMIT $${args.length}`,
    args,
  );
  return toPage(rows, req);
}
