import { type DataSource } from 'typeorm';
import {
  type Alert,
  type AlertKind,
  type DriftReport,
  type Monitor,
  MonitorKind,
  type MonitorReport,
  type MonitorRepository,
  type PerformanceReport,
} from '../../../domain/monitoring/monitor';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { sqlKeysetPage } from '../features/sql-keyset';
import { returnedRows } from '../returned-rows';

interface MonitorRow {
  id: string;
  deployment_id: string;
  kind: MonitorKind;
  window_ms: string;
  step_ms: string;
  settings: { drift: Monitor['drift']; performance: Monitor['performance'] };
  last_run_at: Date | null;
  created_at: Date;
}

interface ReportRow {
  id: string;
  monitor_id: string;
  kind: MonitorKind;
  model_version_id: string;
  reference_dataset_id: string | null;
  window_start: Date;
  window_end: Date;
  predictions: number;
  labels: number | null;
  alerting: boolean;
  summary: string;
  body: Record<string, unknown>;
  created_at: Date;
}

interface AlertRow {
  id: string;
  monitor_id: string | null;
  model_version_id: string;
  kind: AlertKind;
  report_id: string | null;
  summary: string;
  opened_at: Date;
  last_seen_at: Date;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  cleared_at: Date | null;
  created_at: Date;
}

export class SqlMonitorRepository implements MonitorRepository {
  constructor(private readonly ds: DataSource) {}

  async create(m: Omit<Monitor, 'id' | 'createdAt' | 'lastRunAt'>): Promise<Monitor> {
    // One monitor per (endpoint, kind): two callers racing to create it both configure it.
    const rows: MonitorRow[] = await this.ds.query(
      `INSERT INTO monitor (deployment_id, kind, window_ms, step_ms, settings)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (deployment_id, kind) DO UPDATE
         SET window_ms = EXCLUDED.window_ms, step_ms = EXCLUDED.step_ms, settings = EXCLUDED.settings
       RETURNING *`,
      [
        m.deploymentId,
        m.kind,
        m.windowMs,
        m.stepMs,
        JSON.stringify({ drift: m.drift, performance: m.performance }),
      ],
    );
    return toMonitor(rows[0]);
  }

  async update(
    id: string,
    m: Pick<Monitor, 'windowMs' | 'stepMs' | 'drift' | 'performance'>,
  ): Promise<void> {
    await this.ds.query(
      `UPDATE monitor SET window_ms = $2, step_ms = $3, settings = $4 WHERE id = $1`,
      [id, m.windowMs, m.stepMs, JSON.stringify({ drift: m.drift, performance: m.performance })],
    );
  }

  async find(id: string): Promise<Monitor | null> {
    const rows: MonitorRow[] = await this.ds.query(`SELECT * FROM monitor WHERE id = $1`, [id]);
    return rows[0] ? toMonitor(rows[0]) : null;
  }

  async all(): Promise<Monitor[]> {
    const rows: MonitorRow[] = await this.ds.query(`SELECT * FROM monitor ORDER BY created_at, id`);
    return rows.map(toMonitor);
  }

  async ofDeployment(deploymentId: string): Promise<Monitor[]> {
    const rows: MonitorRow[] = await this.ds.query(
      `SELECT * FROM monitor WHERE deployment_id = $1 ORDER BY created_at, id`,
      [deploymentId],
    );
    return rows.map(toMonitor);
  }

  async markRun(id: string, at: Date): Promise<void> {
    await this.ds.query(`UPDATE monitor SET last_run_at = $2 WHERE id = $1`, [id, at]);
  }

  async saveReport(
    r: Omit<DriftReport, 'id' | 'createdAt'> | Omit<PerformanceReport, 'id' | 'createdAt'>,
  ): Promise<MonitorReport> {
    const body =
      r.kind === MonitorKind.DATA_DRIFT
        ? { features: r.features }
        : { metrics: r.metrics, reference: r.reference, judged: r.judged, reasons: r.reasons };
    const rows: ReportRow[] = await this.ds.query(
      `INSERT INTO monitor_report (monitor_id, kind, model_version_id, reference_dataset_id, window_start, window_end, predictions, labels, alerting, summary, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [
        r.monitorId,
        r.kind,
        r.versionId,
        r.kind === MonitorKind.DATA_DRIFT ? r.referenceDatasetId : null,
        r.windowStart,
        r.windowEnd,
        r.predictions,
        r.kind === MonitorKind.PERFORMANCE ? r.labels : null,
        r.alerting,
        r.summary,
        // JSON has no Infinity: a feature with no spread in its reference has ∞ normalised distance.
        JSON.stringify(body, (_, v: unknown) =>
          typeof v === 'number' && !Number.isFinite(v) ? null : v,
        ),
      ],
    );
    return toReport(rows[0]);
  }

  async reports(monitorId: string, page: PageRequest): Promise<Page<MonitorReport>> {
    const p = await sqlKeysetPage<ReportRow>(
      this.ds,
      'monitor_report',
      ['monitor_id = $1'],
      [monitorId],
      page,
    );
    return { ...p, items: p.items.map(toReport) };
  }

  async report(id: string): Promise<MonitorReport | null> {
    const rows: ReportRow[] = await this.ds.query(`SELECT * FROM monitor_report WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? toReport(rows[0]) : null;
  }

  async raise(
    a: Omit<
      Alert,
      'id' | 'acknowledgedAt' | 'acknowledgedBy' | 'clearedAt' | 'lastSeenAt' | 'createdAt'
    >,
  ): Promise<{ alert: Alert; opened: boolean }> {
    // Insert unless an alert is open for (monitor, version), or for (version, kind) when no
    // monitor raised it — partial unique indexes decide, so two processes racing open one
    // alert, not two.
    const monitored = a.monitorId !== null;
    const inserted: AlertRow[] = await this.ds.query(
      `INSERT INTO monitor_alert (monitor_id, model_version_id, kind, report_id, summary, opened_at, last_seen_at)
       VALUES ($1, $2, $3, $4, $5, $6, $6)
       ON CONFLICT ${
         monitored
           ? '(monitor_id, model_version_id) WHERE cleared_at IS NULL AND monitor_id IS NOT NULL'
           : '(model_version_id, kind) WHERE cleared_at IS NULL AND monitor_id IS NULL'
       } DO NOTHING
       RETURNING *`,
      [a.monitorId, a.versionId, a.kind, a.reportId, a.summary, a.openedAt],
    );
    if (inserted[0]) return { alert: toAlert(inserted[0]), opened: true };
    const updated = returnedRows<AlertRow>(
      await this.ds.query(
        `UPDATE monitor_alert SET report_id = $4, summary = $5, last_seen_at = $6
         WHERE monitor_id IS NOT DISTINCT FROM $1 AND model_version_id = $2
           AND ($1::uuid IS NOT NULL OR kind = $3) AND cleared_at IS NULL RETURNING *`,
        [a.monitorId, a.versionId, a.kind, a.reportId, a.summary, a.openedAt],
      ),
    );
    return { alert: toAlert(updated[0]), opened: false };
  }

  async clear(monitorId: string, versionId: string, at: Date): Promise<Alert | null> {
    const rows = returnedRows<AlertRow>(
      await this.ds.query(
        `UPDATE monitor_alert SET cleared_at = $3
         WHERE monitor_id = $1 AND model_version_id = $2 AND cleared_at IS NULL RETURNING *`,
        [monitorId, versionId, at],
      ),
    );
    return rows[0] ? toAlert(rows[0]) : null;
  }

  async acknowledge(id: string, by: string, at: Date): Promise<Alert | null> {
    const rows = returnedRows<AlertRow>(
      await this.ds.query(
        `UPDATE monitor_alert SET acknowledged_at = COALESCE(acknowledged_at, $3), acknowledged_by = COALESCE(acknowledged_by, $2)
         WHERE id = $1 RETURNING *`,
        [id, by, at],
      ),
    );
    return rows[0] ? toAlert(rows[0]) : null;
  }

  async alerts(
    filter: { openOnly: boolean; versionId?: string; monitorId?: string },
    page: PageRequest,
  ): Promise<Page<Alert>> {
    const conds: string[] = [];
    const params: unknown[] = [];
    if (filter.openOnly) conds.push('cleared_at IS NULL');
    if (filter.versionId) {
      params.push(filter.versionId);
      conds.push(`model_version_id = $${params.length}`);
    }
    if (filter.monitorId) {
      params.push(filter.monitorId);
      conds.push(`monitor_id = $${params.length}`);
    }
    const p = await sqlKeysetPage<AlertRow>(this.ds, 'monitor_alert', conds, params, page);
    return { ...p, items: p.items.map(toAlert) };
  }

  async alert(id: string): Promise<Alert | null> {
    const rows: AlertRow[] = await this.ds.query(`SELECT * FROM monitor_alert WHERE id = $1`, [id]);
    return rows[0] ? toAlert(rows[0]) : null;
  }
}

function toMonitor(r: MonitorRow): Monitor {
  return {
    id: r.id,
    deploymentId: r.deployment_id,
    kind: r.kind,
    windowMs: Number(r.window_ms),
    stepMs: Number(r.step_ms),
    drift: r.settings.drift,
    performance: r.settings.performance,
    lastRunAt: r.last_run_at,
    createdAt: r.created_at,
  };
}

function toReport(r: ReportRow): MonitorReport {
  const base = {
    id: r.id,
    monitorId: r.monitor_id,
    versionId: r.model_version_id,
    windowStart: r.window_start,
    windowEnd: r.window_end,
    predictions: r.predictions,
    alerting: r.alerting,
    summary: r.summary,
    createdAt: r.created_at,
  };
  if (r.kind === MonitorKind.DATA_DRIFT)
    return {
      ...base,
      kind: MonitorKind.DATA_DRIFT,
      referenceDatasetId: r.reference_dataset_id,
      features: r.body.features as DriftReport['features'],
    };
  return {
    ...base,
    kind: MonitorKind.PERFORMANCE,
    labels: r.labels ?? 0,
    metrics: r.body.metrics as PerformanceReport['metrics'],
    reference: r.body.reference as PerformanceReport['reference'],
    judged: r.body.judged as boolean,
    reasons: r.body.reasons as string[],
  };
}

function toAlert(r: AlertRow): Alert {
  return {
    id: r.id,
    monitorId: r.monitor_id,
    versionId: r.model_version_id,
    kind: r.kind,
    reportId: r.report_id,
    summary: r.summary,
    openedAt: r.opened_at,
    lastSeenAt: r.last_seen_at,
    acknowledgedAt: r.acknowledged_at,
    acknowledgedBy: r.acknowledged_by,
    clearedAt: r.cleared_at,
    createdAt: r.created_at,
  };
}
