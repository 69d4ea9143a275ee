import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type DatasetService, type SnapshotFormat } from '../domain/features/dataset.service';
import { DomainError, ErrorCategory } from '../domain/shared/domain-error';
import { localIdOf } from '../schema/node.types';

const ROUTE = /^\/datasets\/([^/]+)\/snapshot\.(parquet|arrow)$/;

const CONTENT_TYPES: Record<SnapshotFormat, string> = {
  parquet: 'application/vnd.apache.parquet',
  arrow: 'application/vnd.apache.arrow.file',
};

/**
 * Training data for anyone who may read snapshots in the graph (the route takes the role of
 * `node`, VIEWER or above; routes.ts; the server checked it before this runs):
 *
 *   GET /datasets/<id>/snapshot.parquet   the snapshot as Parquet
 *   GET /datasets/<id>/snapshot.arrow     the snapshot's Arrow IPC file
 *
 * `<id>` is the DatasetSnapshot's global ID. The body is streamed from the artifact store and
 * verified as it goes (a file that fails verification is cut off, never completed);
 * `x-content-sha256` is the SHA-256 of the bytes served, `x-aether-content-hash` (and the ETag)
 * the snapshot's content hash. HEAD answers the same headers without the body.
 */
export async function handleDatasetFiles(
  req: IncomingMessage,
  res: ServerResponse,
  datasets: DatasetService,
  pathText: (raw: string, name: string) => string,
): Promise<number> {
  const path = (req.url ?? '/').split('?')[0];
  const m = ROUTE.exec(path);
  if (!m || (req.method !== 'GET' && req.method !== 'HEAD'))
    throw new DomainError(
      ErrorCategory.NOT_FOUND,
      'ROUTE_NOT_FOUND',
      `No route ${req.method ?? ''} ${path}: GET /datasets/<id>/snapshot.parquet or .arrow`,
    );
  const format = m[2] as SnapshotFormat;
  const { snapshot, ref, body } = await datasets.open(
    localIdOf(pathText(m[1], 'dataset'), 'DatasetSnapshot'),
    format,
  );
  res.statusCode = 200;
  res.setHeader('content-type', CONTENT_TYPES[format]);
  res.setHeader('content-length', String(ref.size));
  res.setHeader('x-content-sha256', ref.sha256);
  res.setHeader('x-aether-content-hash', snapshot.contentHash ?? '');
  res.setHeader('etag', `"${snapshot.contentHash ?? ref.sha256}-${format}"`);
  res.setHeader(
    'content-disposition',
    `attachment; filename="${snapshot.name.replace(/[^A-Za-z0-9._-]/g, '_')}.${format}"`,
  );
  if (req.method === 'HEAD') {
    res.end();
    return 200;
  }
  for await (const chunk of body) {
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end();
  return 200;
}
