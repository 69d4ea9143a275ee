import { type DataSource, type EntityManager } from 'typeorm';
import { type ArtifactRef } from '../../../domain/artifacts/artifact-store';
import {
  type Evaluation,
  type Gate,
  type Model,
  type ModelSignature,
  ModelState,
  type ModelVersion,
  type Transition,
} from '../../../domain/registry/model';
import {
  type ModelRegistryRepository,
  type NewVersion,
  type TransitionRequest,
} from '../../../domain/registry/ports';
import { type Clock } from '../../../domain/shared/clock';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { sqlKeysetPage } from '../features/sql-keyset';
import { returnedRows } from '../returned-rows';

interface ModelRow {
  id: string;
  name: string;
  gates: Gate[];
  production_version_id: string | null;
  previous_production_version_id: string | null;
  created_at: Date;
}

interface VersionRow {
  id: string;
  model_id: string;
  model_name: string;
  version: number;
  state: ModelState;
  run_id: string | null;
  artifact: ArtifactRef;
  dataset_id: string | null;
  dataset_hash: string | null;
  feature_refs: string[];
  fvv_ids: string[] | null;
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, number>;
  git_commit: string | null;
  trainer: ModelVersion['trainer'];
  signature: ModelSignature;
  created_at: Date;
  state_changed_at: Date;
}

const VERSIONS = `(SELECT mv.*, m.name AS model_name,
    (SELECT array_agg(l.version_id) FROM model_version_feature_view_version l WHERE l.model_version_id = mv.id) AS fvv_ids
  FROM model_version mv JOIN model m ON m.id = mv.model_id) versions`;

/** Raw SQL: version numbering and promotions take a row lock on the model, in one transaction. */
export class SqlModelRegistryRepository implements ModelRegistryRepository {
  /** Every time it writes (created, state changed, transition) comes from `clock`. */
  constructor(
    private readonly ds: DataSource,
    private readonly clock: Clock,
  ) {}

  insertVersion(v: NewVersion): Promise<{ version: ModelVersion; created: boolean }> {
    const at = this.clock.now();
    return this.ds.transaction(async (m) => {
      await m.query(
        `INSERT INTO model (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
        [v.modelName, at],
      );
      // The lock serializes registrations of one model: each sees the last number taken.
      const [model] = (await m.query(`SELECT id FROM model WHERE name = $1 FOR UPDATE`, [
        v.modelName,
      ])) as { id: string }[];
      // A run is one version of a model: registering it again (a retry, a double click)
      // answers the version it already is.
      if (v.runId) {
        const [already] = (await m.query(
          `SELECT id FROM model_version WHERE model_id = $1 AND run_id = $2`,
          [model.id, v.runId],
        )) as { id: string }[];
        if (already) return { version: (await this.versions(m, [already.id]))[0], created: false };
      }
      const [row] = (await m.query(
        `INSERT INTO model_version (model_id, version, state, run_id, artifact, dataset_id, dataset_hash,
           feature_refs, hyperparameters, metrics, git_commit, trainer, signature, created_at, state_changed_at)
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13
         FROM model_version WHERE model_id = $1
         RETURNING id`,
        [
          model.id,
          ModelState.REGISTERED,
          v.runId,
          JSON.stringify(v.artifact),
          v.datasetId,
          v.datasetHash,
          JSON.stringify(v.featureRefs),
          JSON.stringify(v.hyperparameters),
          JSON.stringify(v.metrics),
          v.gitCommit,
          v.trainer ? JSON.stringify(v.trainer) : null,
          JSON.stringify(v.signature),
          at,
        ],
      )) as { id: string }[];
      if (v.featureViewVersionIds.length)
        await m.query(
          `INSERT INTO model_version_feature_view_version (model_version_id, version_id)
           SELECT $1, unnest($2::uuid[])`,
          [row.id, v.featureViewVersionIds],
        );
      await this.record(m, row.id, null, ModelState.REGISTERED, v.actor, v.reason, [], at);
      if (v.runId)
        await m.query(`UPDATE training_run SET model_version_id = $2 WHERE id = $1`, [
          v.runId,
          row.id,
        ]);
      return { version: (await this.versions(m, [row.id]))[0], created: true };
    });
  }

  async versionOfRun(modelName: string, runId: string): Promise<ModelVersion | null> {
    const rows = (await this.ds.query(
      `SELECT v.id FROM model_version v JOIN model m ON m.id = v.model_id
       WHERE m.name = $1 AND v.run_id = $2`,
      [modelName, runId],
    )) as { id: string }[];
    return rows[0] ? ((await this.findVersions([rows[0].id]))[0] ?? null) : null;
  }

  async findModel(name: string): Promise<Model | null> {
    const rows: ModelRow[] = await this.ds.query(`SELECT * FROM model WHERE name = $1`, [name]);
    return rows[0] ? toModel(rows[0]) : null;
  }

  async findModelsByIds(ids: readonly string[]): Promise<Model[]> {
    if (!ids.length) return [];
    const rows: ModelRow[] = await this.ds.query(`SELECT * FROM model WHERE id = ANY($1::uuid[])`, [
      ids,
    ]);
    return rows.map(toModel);
  }

  async listModels(page: PageRequest): Promise<Page<Model>> {
    const p = await sqlKeysetPage<ModelRow>(this.ds, 'model', [], [], page);
    return { ...p, items: p.items.map(toModel) };
  }

  findVersions(ids: readonly string[]): Promise<ModelVersion[]> {
    return this.versions(this.ds.manager, ids);
  }

  async versionsOf(modelIds: readonly string[]): Promise<ModelVersion[]> {
    if (!modelIds.length) return [];
    const rows: VersionRow[] = await this.ds.query(
      `SELECT * FROM ${VERSIONS} WHERE model_id = ANY($1::uuid[]) ORDER BY version`,
      [modelIds],
    );
    return rows.map(toVersion);
  }

  transition(
    t: TransitionRequest,
  ): Promise<{ version: ModelVersion; replaced: ModelVersion | null } | null> {
    const at = this.clock.now();
    return this.ds.transaction(async (m) => {
      const [model] = (await m.query(
        `SELECT m.* FROM model m JOIN model_version mv ON mv.model_id = m.id WHERE mv.id = $1 FOR UPDATE OF m`,
        [t.versionId],
      )) as ModelRow[];
      if (!model || model.production_version_id !== t.expectedProductionId) return null;
      const moved = (await m.query(
        `UPDATE model_version SET state = $3, state_changed_at = $4 WHERE id = $1 AND state = $2 RETURNING id`,
        [t.versionId, t.from, t.to, at],
      )) as unknown;
      if (!returnedRows(moved).length) return null;
      await this.record(m, t.versionId, t.from, t.to, t.actor, t.reason, t.gates, at);
      let replaced: string | null = null;
      if (t.to === ModelState.PRODUCTION) {
        replaced = model.production_version_id;
        if (replaced) {
          await m.query(
            `UPDATE model_version SET state = 'ARCHIVED', state_changed_at = $2 WHERE id = $1`,
            [replaced, at],
          );
          await this.record(
            m,
            replaced,
            ModelState.PRODUCTION,
            ModelState.ARCHIVED,
            t.actor,
            `replaced in production by ${t.versionId}`,
            [],
            at,
          );
        }
        await m.query(
          `UPDATE model SET production_version_id = $2, previous_production_version_id = coalesce($3, previous_production_version_id) WHERE id = $1`,
          [model.id, t.versionId, replaced],
        );
      } else if (t.from === ModelState.PRODUCTION) {
        await m.query(`UPDATE model SET production_version_id = NULL WHERE id = $1`, [model.id]);
      }
      const versions = await this.versions(m, replaced ? [t.versionId, replaced] : [t.versionId]);
      return {
        version: versions.find((v) => v.id === t.versionId) as ModelVersion,
        replaced: versions.find((v) => v.id === replaced) ?? null,
      };
    });
  }

  rollback(
    modelId: string,
    actor: string,
    reason: string,
  ): Promise<{ restored: ModelVersion; rolledBack: ModelVersion } | null> {
    const at = this.clock.now();
    return this.ds.transaction(async (m) => {
      const [model] = (await m.query(`SELECT * FROM model WHERE id = $1 FOR UPDATE`, [
        modelId,
      ])) as ModelRow[];
      const current = model?.production_version_id;
      const previous = model?.previous_production_version_id;
      if (!current || !previous) return null;
      const [prev] = await this.versions(m, [previous]);
      await m.query(
        `UPDATE model_version SET state = 'ROLLED_BACK', state_changed_at = $2 WHERE id = $1`,
        [current, at],
      );
      await this.record(
        m,
        current,
        ModelState.PRODUCTION,
        ModelState.ROLLED_BACK,
        actor,
        reason,
        [],
        at,
      );
      await m.query(
        `UPDATE model_version SET state = 'PRODUCTION', state_changed_at = $2 WHERE id = $1`,
        [previous, at],
      );
      await this.record(
        m,
        previous,
        prev.state,
        ModelState.PRODUCTION,
        actor,
        `rollback: ${reason}`,
        [],
        at,
      );
      await m.query(
        `UPDATE model SET production_version_id = $2, previous_production_version_id = NULL WHERE id = $1`,
        [modelId, previous],
      );
      const vs = await this.versions(m, [current, previous]);
      return {
        restored: vs.find((v) => v.id === previous) as ModelVersion,
        rolledBack: vs.find((v) => v.id === current) as ModelVersion,
      };
    });
  }

  async transitionsOf(versionIds: readonly string[]): Promise<Map<string, Transition[]>> {
    const out = new Map<string, Transition[]>(versionIds.map((id) => [id, []]));
    if (!versionIds.length) return out;
    const rows: {
      id: string;
      model_version_id: string;
      from_state: ModelState | null;
      to_state: ModelState;
      actor: string;
      reason: string;
      gates: Transition['gates'];
      at: Date;
    }[] = await this.ds.query(
      `SELECT * FROM model_transition WHERE model_version_id = ANY($1::uuid[]) ORDER BY id`,
      [versionIds],
    );
    for (const r of rows)
      out.get(r.model_version_id)?.push({
        id: String(r.id),
        modelVersionId: r.model_version_id,
        from: r.from_state,
        to: r.to_state,
        actor: r.actor,
        reason: r.reason,
        gates: r.gates,
        at: r.at,
      });
    return out;
  }

  async saveEvaluation(versionId: string, e: Evaluation): Promise<void> {
    await this.ds.query(
      `INSERT INTO model_evaluation (model_version_id, dataset_id, metrics, at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (model_version_id, dataset_id) DO UPDATE SET metrics = EXCLUDED.metrics, at = EXCLUDED.at`,
      [versionId, e.datasetId, JSON.stringify(e.metrics), e.at],
    );
  }

  async evaluationsOf(versionIds: readonly string[]): Promise<Map<string, Evaluation[]>> {
    const out = new Map<string, Evaluation[]>(versionIds.map((id) => [id, []]));
    if (!versionIds.length) return out;
    const rows: {
      model_version_id: string;
      dataset_id: string;
      metrics: Evaluation['metrics'];
      at: Date;
    }[] = await this.ds.query(
      `SELECT * FROM model_evaluation WHERE model_version_id = ANY($1::uuid[]) ORDER BY at DESC`,
      [versionIds],
    );
    for (const r of rows)
      out.get(r.model_version_id)?.push({ datasetId: r.dataset_id, metrics: r.metrics, at: r.at });
    return out;
  }

  async setGates(modelId: string, gates: Gate[]): Promise<Model> {
    const rows = (await this.ds.query(`UPDATE model SET gates = $2 WHERE id = $1 RETURNING *`, [
      modelId,
      JSON.stringify(gates),
    ])) as unknown;
    return toModel(returnedRows<ModelRow>(rows)[0]);
  }

  private async versions(m: EntityManager, ids: readonly string[]): Promise<ModelVersion[]> {
    if (!ids.length) return [];
    const rows: VersionRow[] = await m.query(
      `SELECT * FROM ${VERSIONS} WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map(toVersion);
  }

  private async record(
    m: EntityManager,
    versionId: string,
    from: ModelState | null,
    to: ModelState,
    actor: string,
    reason: string,
    gates: Transition['gates'],
    at: Date,
  ): Promise<void> {
    await m.query(
      `INSERT INTO model_transition (model_version_id, from_state, to_state, actor, reason, gates, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [versionId, from, to, actor, reason, JSON.stringify(gates), at],
    );
  }
}

function toModel(r: ModelRow): Model {
  return {
    id: r.id,
    name: r.name,
    gates: r.gates,
    productionVersionId: r.production_version_id,
    previousProductionVersionId: r.previous_production_version_id,
    createdAt: r.created_at,
  };
}

function toVersion(r: VersionRow): ModelVersion {
  return {
    id: r.id,
    modelId: r.model_id,
    modelName: r.model_name,
    version: r.version,
    state: r.state,
    runId: r.run_id,
    artifact: r.artifact,
    datasetId: r.dataset_id,
    datasetHash: r.dataset_hash,
    // Frozen: a version's feature lists never change, and a frozen list is resolved by
    // identity on the serving path (FeatureRegistryService.resolveRefs).
    featureRefs: Object.freeze(r.feature_refs),
    featureViewVersionIds: r.fvv_ids ?? [],
    hyperparameters: r.hyperparameters,
    metrics: r.metrics,
    gitCommit: r.git_commit,
    trainer: r.trainer,
    signature: {
      ...r.signature,
      features: r.signature.features && Object.freeze(r.signature.features),
    },
    createdAt: r.created_at,
    stateChangedAt: r.state_changed_at,
  };
}
