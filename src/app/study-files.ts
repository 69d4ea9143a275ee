import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type StudyResultsService } from '../domain/hpo/study-results.service';
import { DomainError, ErrorCategory } from '../domain/shared/domain-error';
import { localIdOf } from '../schema/node.types';

const ROUTE = /^\/studies\/([^/]+)\/optuna-journal\.log$/;

/**
 * A study as an Optuna journal file, for anyone who may read studies in the graph (the route
 * takes the role of `node`, VIEWER or above; routes.ts; the server checked it before this
 * runs):
 *
 *   GET /studies/<id>/optuna-journal.log
 *
 * `<id>` is the Study's global ID. Save it and open it with Optuna
 * (`optuna.load_study(study_name=…, storage=JournalStorage(JournalFileBackend(path)))`) or
 * `optuna-dashboard path`. The file is written from the study's state when asked; HEAD
 * answers the same headers without the body.
 */
export async function handleStudyFiles(
  req: IncomingMessage,
  res: ServerResponse,
  results: StudyResultsService,
  pathText: (raw: string, name: string) => string,
): Promise<number> {
  const path = (req.url ?? '/').split('?')[0];
  const m = ROUTE.exec(path);
  if (!m || (req.method !== 'GET' && req.method !== 'HEAD'))
    throw new DomainError(
      ErrorCategory.NOT_FOUND,
      'ROUTE_NOT_FOUND',
      `No route ${req.method ?? ''} ${path}: GET /studies/<id>/optuna-journal.log`,
    );
  const body = Buffer.from(
    await results.optunaJournal(localIdOf(pathText(m[1], 'study'), 'Study')),
    'utf8',
  );
  res.statusCode = 200;
  res.setHeader('content-type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('content-length', String(body.length));
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-disposition', 'attachment; filename="optuna-journal.log"');
  res.end(req.method === 'HEAD' ? undefined : body);
  return 200;
}
