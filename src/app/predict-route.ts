import { z } from 'zod';
import { InvalidInputError } from '../domain/shared/domain-error';
import { type PredictionService } from '../domain/serving/prediction.service';
import { ServingErrorCode } from '../domain/serving/deployment';
import { toGlobalId } from '../schema/node.types';

/**
 * The lean JSON path for predictions, beside the `predict` mutation and sharing its code
 * (PredictionService.predict): no GraphQL parse, validation or resolver walk per request.
 *
 *   POST /v1/predict/<endpoint>   { "requestKey": "u1", "entityKeys": ["ORD"] }
 *                                  { "requestKey": "u1", "rows": [{ "f": 1.5 }] }
 *   200 { "predictions": [{ id, entityKey, score, version, versionId, role, asOf }] }
 *
 * One prediction per row, in request order, each with its own entity's `asOf` (ISO-8601 or
 * null), as the graph's `Prediction` gives it.
 *
 * Errors carry the same codes as the graph's (`extensions.code`, `extensions.reason`).
 */
const Body = z.object({
  requestKey: z.string(),
  entityKeys: z.array(z.string()).optional(),
  rows: z.array(z.record(z.string(), z.unknown())).nullable().optional(),
});

export async function predictJson(
  endpoint: string,
  body: unknown,
  serving: PredictionService,
): Promise<unknown> {
  const parsed = Body.safeParse(body);
  if (!parsed.success)
    throw new InvalidInputError(
      ServingErrorCode.INVALID_FEATURES,
      `Body must be { requestKey, entityKeys } or { requestKey, rows }: ${parsed.error.issues
        .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
        .join('; ')}`,
    );
  const { requestKey, entityKeys, rows } = parsed.data;
  const predictions = await serving.predict(endpoint, requestKey, entityKeys ?? [], rows ?? null);
  return {
    predictions: predictions.map((p) => ({
      id: p.id,
      entityKey: p.entityKey,
      score: p.score,
      version: `${p.version.modelName}@${p.version.version}`,
      versionId: toGlobalId('ModelVersion', p.version.id),
      role: p.role,
      asOf: p.asOf?.toISOString() ?? null,
    })),
  };
}
