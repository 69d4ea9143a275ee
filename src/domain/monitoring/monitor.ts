import { type SpineRow } from '../features/dataset';
import { type Page, type PageRequest } from '../shared/pagination';
import { type SnapshotProfile } from './retraining';
import { type DriftSettings, type FeatureDrift } from './drift';
import { type PerformanceMetrics, type PerformanceSettings } from './performance';

export enum MonitorKind {
  DATA_DRIFT = 'DATA_DRIFT',
  PERFORMANCE = 'PERFORMANCE',
}

export enum AlertKind {
  DATA_DRIFT = 'DATA_DRIFT',
  PERFORMANCE = 'PERFORMANCE',
  /** A retraining's data failed validation: nothing was trained. */
  DATA_VALIDATION = 'DATA_VALIDATION',
  /** Records about the version (its prediction log) could not be stored and were set aside. */
  DEAD_LETTER = 'DEAD_LETTER',
}

/** A monitor of one deployment: every `stepMs` it judges the last `windowMs` of traffic. */
export interface Monitor {
  id: string;
  deploymentId: string;
  kind: MonitorKind;
  windowMs: number;
  stepMs: number;
  drift: DriftSettings | null;
  performance: PerformanceSettings | null;
  lastRunAt: Date | null;
  createdAt: Date;
}

export interface ReportBase {
  id: string;
  monitorId: string;
  versionId: string;
  windowStart: Date;
  windowEnd: Date;
  predictions: number;
  alerting: boolean;
  summary: string;
  createdAt: Date;
}

export interface DriftReport extends ReportBase {
  kind: MonitorKind.DATA_DRIFT;
  referenceDatasetId: string | null;
  features: FeatureDrift[];
}

export interface PerformanceReport extends ReportBase {
  kind: MonitorKind.PERFORMANCE;
  labels: number;
  metrics: PerformanceMetrics;
  reference: PerformanceMetrics | null;
  judged: boolean;
  reasons: string[];
}

export type MonitorReport = DriftReport | PerformanceReport;

export interface Alert {
  id: string;
  monitorId: string | null;
  versionId: string;
  kind: AlertKind;
  reportId: string | null;
  summary: string;
  openedAt: Date;
  lastSeenAt: Date;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  clearedAt: Date | null;
  createdAt: Date;
}

/** What `driftEvents` and `performanceEvents` push. */
export interface AlertEvent {
  endpoint: string | null;
  status: 'OPENED' | 'ACKNOWLEDGED' | 'CLEARED';
  alert: Alert;
}

export enum MonitoringErrorCode {
  MONITOR_NOT_FOUND = 'MONITOR_NOT_FOUND',
  INVALID_MONITOR = 'INVALID_MONITOR',
  ALERT_NOT_FOUND = 'ALERT_NOT_FOUND',
  NO_REFERENCE = 'NO_REFERENCE',
}

export interface MonitorRepository {
  create(m: Omit<Monitor, 'id' | 'createdAt' | 'lastRunAt'>): Promise<Monitor>;
  update(
    id: string,
    m: Pick<Monitor, 'windowMs' | 'stepMs' | 'drift' | 'performance'>,
  ): Promise<void>;
  find(id: string): Promise<Monitor | null>;
  all(): Promise<Monitor[]>;
  ofDeployment(deploymentId: string): Promise<Monitor[]>;
  markRun(id: string, at: Date): Promise<void>;
  saveReport(
    r: Omit<DriftReport, 'id' | 'createdAt'> | Omit<PerformanceReport, 'id' | 'createdAt'>,
  ): Promise<MonitorReport>;
  reports(monitorId: string, page: PageRequest): Promise<Page<MonitorReport>>;
  report(id: string): Promise<MonitorReport | null>;
  /**
   * Opens an alert unless one is open for (monitor, version): then only its report and
   * last-seen time move. `opened` says which happened.
   */
  raise(
    a: Omit<
      Alert,
      'id' | 'acknowledgedAt' | 'acknowledgedBy' | 'clearedAt' | 'lastSeenAt' | 'createdAt'
    >,
  ): Promise<{ alert: Alert; opened: boolean }>;
  /** Clears the open alert of (monitor, version), if any. */
  clear(monitorId: string, versionId: string, at: Date): Promise<Alert | null>;
  acknowledge(id: string, by: string, at: Date): Promise<Alert | null>;
  alerts(
    filter: { openOnly: boolean; versionId?: string; monitorId?: string },
    page: PageRequest,
  ): Promise<Page<Alert>>;
  alert(id: string): Promise<Alert | null>;
}

/** Port: what a deployment's versions saw, from the prediction log. */
export interface TrafficReader {
  /** Inputs (one array per prediction, in the version's feature order) in [from, to). */
  inputs(
    deploymentId: string,
    versionId: string,
    from: Date,
    to: Date,
    limit: number,
  ): Promise<(number | null)[][]>;
  /** Predictions made in [from, to), and the score and label of those labelled. */
  labelled(
    deploymentId: string,
    versionId: string,
    from: Date,
    to: Date,
  ): Promise<{ predictions: number; scores: number[]; labels: number[] }>;
  /**
   * Labelled predictions with an entity in [from, to), as a spine (entity, time, label), in
   * time order with ties by request key, so a log split by time splits the same way again.
   */
  labelledSpine(deploymentId: string, from: Date, to: Date): Promise<SpineRow[]>;
  /** The versions with predictions (not shadow copies) in [from, to). */
  versionsSeen(deploymentId: string, from: Date, to: Date): Promise<string[]>;
}

/** Port: a training snapshot's feature columns (the reference distribution). */
export interface ReferenceReader {
  columns(datasetId: string, names: readonly string[]): Promise<Map<string, Float64Array>>;
  /** Rows, positive labels and missing shares, to validate before training on it. */
  profile(datasetId: string): Promise<SnapshotProfile>;
}
