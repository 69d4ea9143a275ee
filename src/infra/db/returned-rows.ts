/** TypeORM answers UPDATE … RETURNING with [rows, affected] on pg, and with rows on PGlite. */
export function returnedRows<T = unknown>(res: unknown): T[] {
  return (Array.isArray(res) && Array.isArray(res[0]) ? res[0] : res) as T[];
}
