import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type Principal } from '../domain/auth/api-key';
import { type RunExecutionService } from '../domain/training/run-execution.service';
import { localIdOf } from '../schema/node.types';

/**
 * The files of a run, for the gpu-runner holding it (it has no artifact-store credentials):
 *
 *   GET /runs/<run>/dataset?runner=<runner>              the snapshot (Arrow IPC), streamed
 *   GET /runs/<run>/checkpoint?runner=<runner>           newest verified checkpoint, or 204
 *   PUT /runs/<run>/checkpoints/<epoch>?runner=<runner>  body + x-content-sha256
 *   PUT /runs/<run>/model?runner=<runner>                the ONNX model + x-content-sha256
 *
 * Every request goes through TrainingService, which checks the runner holds the run's lease.
 */
export async function handleRunFiles(
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
  runs: RunExecutionService,
  pathText: (raw: string, name: string) => string,
): Promise<number> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, , rawRun, what, arg] = url.pathname.split('/');
  const runId = localIdOf(pathText(rawRun ?? '', 'run'), 'Run');
  const runnerId = localIdOf(url.searchParams.get('runner') ?? '', 'Runner');
  const sha256 = String(req.headers['x-content-sha256'] ?? '');
  const json = (status: number, body: unknown) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
    return status;
  };

  if (req.method === 'GET' && what === 'dataset' && arg === undefined) {
    const { ref, body } = await runs.openDataset(principal, runId, runnerId);
    res.statusCode = 200;
    res.setHeader('content-type', 'application/vnd.apache.arrow.file');
    res.setHeader('content-length', String(ref.size));
    res.setHeader('x-content-sha256', ref.sha256);
    for await (const chunk of body) {
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
    return 200;
  }
  if (req.method === 'GET' && what === 'checkpoint' && arg === undefined) {
    const c = await runs.latestCheckpoint(principal, runId, runnerId);
    if (!c) {
      res.statusCode = 204;
      res.end();
      return 204;
    }
    res.statusCode = 200;
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('x-checkpoint-epoch', String(c.epoch));
    res.end(c.bytes);
    return 200;
  }
  if (req.method === 'PUT' && what === 'checkpoints' && arg !== undefined) {
    const ref = await runs.saveCheckpoint(principal, runId, runnerId, Number(arg), req, sha256);
    return json(201, ref);
  }
  if (req.method === 'PUT' && what === 'model' && arg === undefined) {
    return json(201, await runs.saveModel(principal, runId, runnerId, req, sha256));
  }
  return json(404, {
    errors: [
      {
        message: `No route ${req.method ?? ''} ${url.pathname}`,
        extensions: { code: 'NOT_FOUND' },
      },
    ],
  });
}
