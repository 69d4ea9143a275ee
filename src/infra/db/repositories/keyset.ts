import { type ObjectLiteral, type SelectQueryBuilder } from 'typeorm';
import { type Page, type PageRequest, toPage } from '../../../domain/shared/pagination';

/**
 * Applies a Relay page to a query ordered by (timeColumn, id): one indexed range scan,
 * limit + 1 rows to learn whether more exist.
 */
export async function keysetPage<E extends ObjectLiteral>(
  qb: SelectQueryBuilder<E>,
  alias: string,
  timeColumn: string,
  req: PageRequest,
): Promise<Page<E>> {
  const t = `${alias}.${timeColumn}`;
  const id = `${alias}.id`;
  if (req.after)
    qb.andWhere(`(${t}, ${id}) > (:afterT, :afterId)`, {
      afterT: req.after.createdAt,
      afterId: req.after.id,
    });
  if (req.before)
    qb.andWhere(`(${t}, ${id}) < (:beforeT, :beforeId)`, {
      beforeT: req.before.createdAt,
      beforeId: req.before.id,
    });
  const dir = req.backward ? 'DESC' : 'ASC';
  const rows = await qb
    .orderBy(t, dir)
    .addOrderBy(id, dir)
    .limit(req.limit + 1)
    .getMany();
  return toPage(rows, req);
}
