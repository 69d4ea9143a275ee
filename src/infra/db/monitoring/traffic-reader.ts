import { type DataSource } from 'typeorm';
import { type SpineRow } from '../../../domain/features/dataset';
import { type TrafficReader } from '../../../domain/monitoring/monitor';
import { readInputs } from '../serving/prediction-log';

/**
 * What deployed versions saw, read from the prediction log. Shadow copies are left out: they
 * repeat the inputs of the answers given and carry no labels. The log is written in batches
 * off the request path, so each read first writes what is buffered.
 */
export class SqlTrafficReader implements TrafficReader {
  constructor(
    private readonly ds: DataSource,
    private readonly flush: () => Promise<void>,
  ) {}

  async inputs(
    deploymentId: string,
    versionId: string,
    from: Date,
    to: Date,
    limit: number,
  ): Promise<(number | null)[][]> {
    await this.flush();
    const rows: { inputs: Buffer }[] = await this.ds.query(
      `SELECT inputs_f32 AS inputs FROM prediction_log
       WHERE model_version_id = $2 AND deployment_id = $1 AND role <> 'SHADOW'
         AND created_at >= $3 AND created_at < $4
       ORDER BY created_at DESC LIMIT $5`,
      [deploymentId, versionId, from, to, limit],
    );
    return rows.map((r) => readInputs(r.inputs));
  }

  async labelled(
    deploymentId: string,
    versionId: string,
    from: Date,
    to: Date,
  ): Promise<{ predictions: number; scores: number[]; labels: number[] }> {
    await this.flush();
    const rows: { score: number; label: number | null }[] = await this.ds.query(
      `SELECT score, label FROM prediction_log
       WHERE model_version_id = $2 AND deployment_id = $1 AND role <> 'SHADOW'
         AND created_at >= $3 AND created_at < $4`,
      [deploymentId, versionId, from, to],
    );
    const labelled = rows.filter((r) => r.label !== null);
    return {
      predictions: rows.length,
      scores: labelled.map((r) => r.score),
      labels: labelled.map((r) => r.label as number),
    };
  }

  async labelledSpine(deploymentId: string, from: Date, to: Date): Promise<SpineRow[]> {
    await this.flush();
    const rows: { entity_key: string; at: Date; label: number }[] = await this.ds.query(
      `SELECT entity_key, created_at AS at, label FROM prediction_log
       WHERE deployment_id = $1 AND role <> 'SHADOW' AND label IS NOT NULL AND entity_key IS NOT NULL
         AND created_at >= $2 AND created_at < $3
       ORDER BY created_at, request_key, id`,
      [deploymentId, from, to],
    );
    return rows.map((r) => ({ entityKey: r.entity_key, ts: r.at.getTime(), label: r.label }));
  }

  async versionsSeen(deploymentId: string, from: Date, to: Date): Promise<string[]> {
    await this.flush();
    const rows: { id: string }[] = await this.ds.query(
      `SELECT DISTINCT model_version_id AS id FROM prediction_log
       WHERE deployment_id = $1 AND role <> 'SHADOW' AND created_at >= $2 AND created_at < $3`,
      [deploymentId, from, to],
    );
    return rows.map((r) => r.id);
  }
}
