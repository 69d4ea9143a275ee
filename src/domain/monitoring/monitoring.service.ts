import { type Principal } from '../auth/api-key';
import { type EventBus } from '../events/event-bus';
import { inputFeatures, ModelState, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { type DeploymentRepository } from '../serving/deployment';
import { type Clock } from '../shared/clock';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import { InvalidInputError, NotFoundError } from '../shared/domain-error';
import { MAX_PAGE_SIZE, type Page, type PageRequest } from '../shared/pagination';
import {
  DEFAULT_DRIFT_SETTINGS,
  type DriftSettings,
  driftSettingsProblem,
  featureDrift,
} from './drift';
import {
  type Alert,
  type AlertEvent,
  AlertKind,
  type DriftReport,
  type Monitor,
  MonitorKind,
  type MonitorReport,
  type MonitorRepository,
  MonitoringErrorCode,
  type PerformanceReport,
  type ReferenceReader,
  type TrafficReader,
} from './monitor';
import {
  DEFAULT_PERFORMANCE_SETTINGS,
  judgePerformance,
  performanceMetrics,
  type PerformanceSettings,
  performanceSettingsProblem,
} from './performance';
import { type SortedSample, sortedSample } from './statistics';

export const MonitorTopics = {
  drift: 'drift-events',
  performance: 'performance-events',
} as const;

/** The most current rows one drift check reads per version. */
const MAX_WINDOW_ROWS = 200_000;

/**
 * Monitors of deployments. A data-drift check compares each version's recent inputs (the
 * prediction log over the window) with the training snapshot it was fitted on; a
 * performance check scores the window's labelled predictions against floors, ceilings and
 * the version's reference evaluation. Every check stores a report per version; a report that
 * alerts opens an alert (or refreshes the one already open), a clean one clears it; opening,
 * acknowledging and clearing are pushed on `driftEvents` / `performanceEvents`.
 */
/** States a version does not come back from to serve. */
const RETIRED = new Set<ModelState>([ModelState.ARCHIVED, ModelState.ROLLED_BACK]);

export class MonitoringService {
  /** Sorted reference columns per snapshot (immutable, so kept while used). */
  private readonly references = new Map<string, Map<string, SortedSample>>();
  private readonly listeners: ((e: AlertEvent) => Promise<void>)[] = [];

  constructor(
    private readonly repo: MonitorRepository,
    private readonly deployments: DeploymentRepository,
    private readonly registry: ModelRegistryService,
    private readonly traffic: TrafficReader,
    private readonly referenceReader: ReferenceReader,
    private readonly events: EventBus,
    private readonly clock: Clock,
    /** An alert's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {}

  async create(
    _actor: Principal,
    input: {
      endpoint: string;
      kind: MonitorKind;
      windowMs: number;
      stepMs: number;
      drift?: Partial<DriftSettings> | null;
      performance?: Partial<PerformanceSettings> | null;
    },
  ): Promise<Monitor> {
    const d = await this.deploymentOf(input.endpoint);
    const settings = this.settings(input);
    const existing = (await this.repo.ofDeployment(d.id)).find((m) => m.kind === input.kind);
    if (existing) {
      await this.repo.update(existing.id, settings);
      return (await this.repo.find(existing.id)) as Monitor;
    }
    return this.repo.create({ deploymentId: d.id, kind: input.kind, ...settings });
  }

  /** Subscribed by the retraining policy: every alert opened. */
  onAlert(listener: (e: AlertEvent) => Promise<void>): void {
    this.listeners.push(listener);
  }

  monitor(id: string): Promise<Monitor | null> {
    return this.repo.find(id);
  }

  async monitorsOf(endpoint: string): Promise<Monitor[]> {
    return this.repo.ofDeployment((await this.deploymentOf(endpoint)).id);
  }

  private async deploymentOf(endpoint: string): Promise<{ id: string }> {
    const d = await this.deployments.findByEndpoint(endpoint);
    if (!d)
      throw new NotFoundError(MonitoringErrorCode.MONITOR_NOT_FOUND, `No endpoint ${endpoint}`);
    return d;
  }

  reports(monitorId: string, page: PageRequest): Promise<Page<MonitorReport>> {
    return this.repo.reports(monitorId, page);
  }

  report(id: string): Promise<MonitorReport | null> {
    return this.repo.report(id);
  }

  alert(id: string): Promise<Alert | null> {
    return this.repo.alert(id);
  }

  alerts(
    filter: { openOnly: boolean; versionId?: string },
    page: PageRequest,
  ): Promise<Page<Alert>> {
    return this.repo.alerts(filter, page);
  }

  /** Runs every monitor whose step has passed since its last run. */
  async runDue(): Promise<MonitorReport[]> {
    const now = this.clock.now().getTime();
    const out: MonitorReport[] = [];
    for (const m of await this.repo.all())
      if (!m.lastRunAt || now - m.lastRunAt.getTime() >= m.stepMs)
        out.push(...(await this.run(m.id)));
    return out;
  }

  /** Judges the monitor's window ending now, one report per version that served in it. */
  async run(monitorId: string): Promise<MonitorReport[]> {
    const m = await this.repo.find(monitorId);
    if (!m)
      throw new NotFoundError(MonitoringErrorCode.MONITOR_NOT_FOUND, `No monitor ${monitorId}`);
    const to = this.clock.now();
    const from = new Date(to.getTime() - m.windowMs);
    const versionIds = await this.traffic.versionsSeen(m.deploymentId, from, to);
    const versions = await this.registry.versionsByIds(versionIds);
    const reports: MonitorReport[] = [];
    for (const v of versions) {
      const report =
        m.kind === MonitorKind.DATA_DRIFT
          ? await this.driftCheck(m, v, from, to)
          : await this.performanceCheck(m, v, from, to);
      if (report) reports.push(report);
    }
    await this.clearRetired(m, versions, to);
    await this.repo.markRun(m.id, to);
    return reports;
  }

  /**
   * Open alerts of versions that left service (ARCHIVED, ROLLED_BACK) and served nothing in
   * this window clear: no later window will judge them, and a list of open alerts should
   * hold what someone may still act on.
   */
  private async clearRetired(m: Monitor, judged: ModelVersion[], at: Date): Promise<void> {
    const open = await this.repo.alerts(
      { openOnly: true, monitorId: m.id },
      { limit: MAX_PAGE_SIZE, backward: false },
    );
    const stale = open.items.filter((a) => !judged.some((v) => v.id === a.versionId));
    if (!stale.length) return;
    const versions = await this.registry.versionsByIds(stale.map((a) => a.versionId));
    for (const v of versions) if (RETIRED.has(v.state)) await this.clear(m, v.id, at);
  }

  async acknowledge(actor: Principal, alertId: string): Promise<Alert> {
    return this.uow.run(async () => {
      const a = await this.repo.acknowledge(alertId, actor.name, this.clock.now());
      if (!a) throw new NotFoundError(MonitoringErrorCode.ALERT_NOT_FOUND, `No alert ${alertId}`);
      await this.announce({ endpoint: await this.endpointOf(a), status: 'ACKNOWLEDGED', alert: a });
      return a;
    });
  }

  /**
   * An alert not tied to a monitor (a retraining whose data failed validation, dead-lettered
   * records): one open alert per version and kind, its summary kept current.
   */
  async raiseUnmonitored(versionId: string, kind: AlertKind, summary: string): Promise<Alert> {
    const { alert, event } = await this.uow.run(async () => {
      const r = await this.repo.raise({
        monitorId: null,
        versionId,
        kind,
        reportId: null,
        summary,
        openedAt: this.clock.now(),
      });
      return {
        alert: r.alert,
        event: r.opened
          ? await this.announce({ endpoint: null, status: 'OPENED', alert: r.alert })
          : null,
      };
    });
    if (event) await this.notify(event);
    return alert;
  }

  /** `driftEvents` / `performanceEvents`: every endpoint's, or one endpoint's. */
  subscribe(kind: MonitorKind, endpoint: string | null, after: string | null = null) {
    const topic = kind === MonitorKind.DATA_DRIFT ? MonitorTopics.drift : MonitorTopics.performance;
    return this.events.subscribe<AlertEvent>(endpoint ? `${topic}:${endpoint}` : topic, {
      after,
    });
  }

  private async driftCheck(
    m: Monitor,
    v: ModelVersion,
    from: Date,
    to: Date,
  ): Promise<DriftReport | null> {
    const settings = m.drift ?? DEFAULT_DRIFT_SETTINGS;
    const names = inputFeatures(v);
    if (!v.datasetId)
      throw new InvalidInputError(
        MonitoringErrorCode.NO_REFERENCE,
        `${v.modelName}@${v.version} records no training snapshot to compare with`,
      );
    const reference = await this.reference(v.datasetId, names);
    const rows = await this.traffic.inputs(m.deploymentId, v.id, from, to, MAX_WINDOW_ROWS);
    const features = names.map((name, j) => {
      const current = Float64Array.from(rows, (r) => r[j] ?? Number.NaN);
      return featureDrift(name, reference.get(name) as SortedSample, current, settings);
    });
    const drifted = features.filter((f) => f.drifted);
    const report = (await this.repo.saveReport({
      kind: MonitorKind.DATA_DRIFT,
      monitorId: m.id,
      versionId: v.id,
      referenceDatasetId: v.datasetId,
      windowStart: from,
      windowEnd: to,
      predictions: rows.length,
      alerting: drifted.length > 0,
      summary: drifted.length
        ? `${v.modelName}@${v.version}: ${drifted.length} of ${features.length} features drifted: ${drifted
            .map((f) => `${f.feature} (${f.rule})`)
            .join('; ')}`
        : `${v.modelName}@${v.version}: no drift in ${features.length} features over ${rows.length} predictions`,
      features,
    })) as DriftReport;
    await this.settle(m, v, report, AlertKind.DATA_DRIFT);
    return report;
  }

  private async performanceCheck(
    m: Monitor,
    v: ModelVersion,
    from: Date,
    to: Date,
  ): Promise<PerformanceReport | null> {
    const settings = m.performance ?? DEFAULT_PERFORMANCE_SETTINGS;
    const seen = await this.traffic.labelled(m.deploymentId, v.id, from, to);
    const metrics = performanceMetrics(settings.task, seen.labels, seen.scores);
    const reference = await this.referenceMetrics(v);
    const verdict = judgePerformance(settings, metrics, seen.labels.length, reference);
    const report = (await this.repo.saveReport({
      kind: MonitorKind.PERFORMANCE,
      monitorId: m.id,
      versionId: v.id,
      windowStart: from,
      windowEnd: to,
      predictions: seen.predictions,
      labels: seen.labels.length,
      metrics,
      reference,
      judged: verdict.judged,
      reasons: verdict.reasons,
      alerting: verdict.degraded,
      summary: `${v.modelName}@${v.version}: ${verdict.rule} (${seen.labels.length} of ${seen.predictions} predictions labelled)`,
    })) as PerformanceReport;
    // A window too thin to judge neither opens nor clears anything.
    if (verdict.judged) await this.settle(m, v, report, AlertKind.PERFORMANCE);
    return report;
  }

  /** Opens (or refreshes) the alert when the report alerts, clears it when it does not. */
  private async settle(
    m: Monitor,
    v: ModelVersion,
    report: MonitorReport,
    kind: AlertKind,
  ): Promise<void> {
    if (!report.alerting) return this.clear(m, v.id, report.windowEnd);
    const endpoint = await this.endpointOfMonitor(m);
    const e = await this.uow.run(async () => {
      const { alert, opened } = await this.repo.raise({
        monitorId: m.id,
        versionId: v.id,
        kind,
        reportId: report.id,
        summary: report.summary,
        openedAt: report.windowEnd,
      });
      return opened ? this.announce({ endpoint, status: 'OPENED', alert }) : null;
    });
    if (e) await this.notify(e);
  }

  /** Clears the open alert of (monitor, version), if any, and says so. */
  private async clear(m: Monitor, versionId: string, at: Date): Promise<void> {
    const endpoint = await this.endpointOfMonitor(m);
    await this.uow.run(async () => {
      const cleared = await this.repo.clear(m.id, versionId, at);
      if (cleared) await this.announce({ endpoint, status: 'CLEARED', alert: cleared });
    });
  }

  /** Records the event in the caller's transaction (topic of its kind, and of its endpoint). */
  private async announce(e: AlertEvent): Promise<AlertEvent> {
    // Data-validation and dead-letter alerts travel with the performance ones.
    const topic =
      e.alert.kind === AlertKind.DATA_DRIFT ? MonitorTopics.drift : MonitorTopics.performance;
    await this.events.publish(topic, e);
    if (e.endpoint) await this.events.publish(`${topic}:${e.endpoint}`, e);
    return e;
  }

  /** After the commit: the retraining policy hears of every alert opened. */
  private async notify(e: AlertEvent): Promise<void> {
    if (e.status === 'OPENED') for (const l of this.listeners) await l(e);
  }

  private async endpointOf(a: Alert): Promise<string | null> {
    const m = a.monitorId ? await this.repo.find(a.monitorId) : null;
    return m ? this.endpointOfMonitor(m) : null;
  }

  private async endpointOfMonitor(m: Monitor): Promise<string | null> {
    return (await this.deployments.findByIds([m.deploymentId]))[0]?.endpoint ?? null;
  }

  /**
   * The version's own evaluation from validation, if recorded: its first. Later ones are the
   * registry judging a challenger against it on the challenger's held-out data; a baseline
   * that moved with them would quietly lower the bar the monitor holds the version to.
   */
  private async referenceMetrics(v: ModelVersion): Promise<Record<string, number> | null> {
    const evaluations = (await this.registry.evaluationsOf([v.id])).get(v.id) ?? [];
    const first = evaluations.sort((a, b) => a.at.getTime() - b.at.getTime())[0];
    if (first) return { ...first.metrics };
    return typeof v.metrics.auc === 'number' ? { auc: v.metrics.auc } : null;
  }

  private async reference(
    datasetId: string,
    names: readonly string[],
  ): Promise<Map<string, SortedSample>> {
    let cached = this.references.get(datasetId);
    if (!cached || names.some((n) => !cached?.has(n))) {
      const columns = await this.referenceReader.columns(datasetId, names);
      cached = new Map([...columns].map(([n, c]) => [n, sortedSample(c)]));
      // A handful of snapshots are monitored at once; forget the oldest beyond that.
      this.references.set(datasetId, cached);
      if (this.references.size > 16)
        this.references.delete(this.references.keys().next().value as string);
    }
    return cached;
  }

  private settings(input: {
    windowMs: number;
    stepMs: number;
    kind: MonitorKind;
    drift?: Partial<DriftSettings> | null;
    performance?: Partial<PerformanceSettings> | null;
  }): Pick<Monitor, 'windowMs' | 'stepMs' | 'drift' | 'performance'> {
    const bad = (m: string) => new InvalidInputError(MonitoringErrorCode.INVALID_MONITOR, m);
    for (const k of ['windowMs', 'stepMs'] as const)
      if (!Number.isInteger(input[k]) || input[k] < 1_000 || input[k] > 365 * 86_400_000)
        throw bad(`${k} must be 1 second to a year, in ms`);
    // Settings for the other kind of monitor would be stored and never read.
    if (input.kind === MonitorKind.DATA_DRIFT && input.performance)
      throw bad('performance settings belong to a PERFORMANCE monitor');
    if (input.kind === MonitorKind.PERFORMANCE && input.drift)
      throw bad('drift settings belong to a DATA_DRIFT monitor');
    if (input.kind === MonitorKind.DATA_DRIFT) {
      const drift = { ...DEFAULT_DRIFT_SETTINGS, ...(input.drift ?? {}) };
      const problem = driftSettingsProblem(drift);
      if (problem) throw bad(`drift: ${problem}`);
      return { windowMs: input.windowMs, stepMs: input.stepMs, drift, performance: null };
    }
    const performance = { ...DEFAULT_PERFORMANCE_SETTINGS, ...(input.performance ?? {}) };
    const problem = performanceSettingsProblem(performance);
    if (problem) throw bad(`performance: ${problem}`);
    return { windowMs: input.windowMs, stepMs: input.stepMs, drift: null, performance };
  }
}
