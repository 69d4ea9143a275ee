import { useMemo } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import { Histogram, LineChart } from '../charts';
import {
  AcknowledgeAlertDocument,
  AlertsDocument,
  DriftAlertsDocument,
  MonitorHistoryDocument,
  PerformanceAlertsDocument,
  ReportDocument,
  type AlertRowFragment,
  type ReportBodyFragment,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, num, StateBadge, useMay, when } from '../ui';

type Live = Map<string, AlertRowFragment>;
const merge = (acc: Live | undefined, a: AlertRowFragment): Live => new Map(acc ?? []).set(a.id, a);

export default function MonitoringPage() {
  const { params } = useLocation();
  const [{ data, error }] = useQuery({ query: AlertsDocument });
  // Alerts arrive, are acknowledged and clear while the page is open.
  const [drift] = useSubscription({ query: DriftAlertsDocument }, (acc: Live | undefined, e) =>
    merge(acc, e.driftEvents.alert),
  );
  const [perf] = useSubscription({ query: PerformanceAlertsDocument }, (acc: Live | undefined, e) =>
    merge(acc, e.performanceEvents.alert),
  );
  const [ack, doAck] = useMutation(AcknowledgeAlertDocument);
  const mayAck = useMay('acknowledgeAlert');
  const alerts = useMemo(() => {
    const byId: Live = new Map();
    for (const e of data?.alerts.edges ?? []) byId.set(e.node.id, e.node);
    for (const m of [drift.data, perf.data]) for (const [id, a] of m ?? []) byId.set(id, a);
    if (ack.data) byId.set(ack.data.acknowledgeAlert.id, ack.data.acknowledgeAlert);
    return [...byId.values()].sort((a, b) => Date.parse(b.openedAt) - Date.parse(a.openedAt));
  }, [data, drift.data, perf.data, ack.data]);
  const selected = alerts.find((a) => a.id === params.get('alert'));

  return (
    <div className="split">
      <Card title="Alerts (live)">
        <ErrorNote error={error ?? ack.error} />
        <table className="grid" data-testid="alerts">
          <thead>
            <tr>
              <th>opened</th>
              <th>kind</th>
              <th>version</th>
              <th>status</th>
              <th>summary</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {alerts.map((a) => (
              <tr
                key={a.id}
                data-alert={a.id}
                data-status={a.status}
                className={a.id === selected?.id ? 'selected' : ''}
                onClick={() => navigate(withParams({ alert: a.id }))}
              >
                <td>{when(a.openedAt)}</td>
                <td>{a.kind}</td>
                <td>{a.version ? `${a.version.model}@${a.version.version}` : '—'}</td>
                <td>
                  <StateBadge state={a.status} />
                </td>
                <td>{a.summary}</td>
                <td onClick={(e) => e.stopPropagation()}>
                  {mayAck && a.status === 'OPEN' && (
                    <button onClick={() => doAck({ id: a.id })}>Acknowledge</button>
                  )}
                  {a.acknowledgedBy && <span className="muted">by {a.acknowledgedBy}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {!alerts.length && <p className="muted">No alerts.</p>}
      </Card>
      {selected && (
        <div>
          {selected.reportId && <Report id={selected.reportId} />}
          {selected.monitorId && <History monitorId={selected.monitorId} />}
        </div>
      )}
    </div>
  );
}

function Report({ id }: { id: string }) {
  const [{ data, error }] = useQuery({ query: ReportDocument, variables: { id } });
  const r = data?.node && 'features' in data.node ? (data.node as ReportBodyFragment) : null;
  return (
    <Card title={r ? `${r.kind} report: ${r.version?.model}@${r.version?.version}` : 'Report'}>
      <ErrorNote error={error} />
      {r && (
        <>
          <p>
            {r.summary}{' '}
            <span className="muted">
              ({when(r.windowStart)} – {when(r.windowEnd)}, {r.predictions} predictions)
            </span>
          </p>
          {r.reasons.map((x, i) => (
            <div key={i} className="bad">
              {x}
            </div>
          ))}
          {r.metrics && (
            <p>
              {Object.entries(r.metrics)
                .map(([k, v]) => `${k} ${num(v)}`)
                .join(', ')}
              {r.reference &&
                ` (reference: ${Object.entries(r.reference)
                  .map(([k, v]) => `${k} ${num(v)}`)
                  .join(', ')})`}
            </p>
          )}
          <div className="features-grid" data-testid="drift-features">
            {r.features.map((f) => (
              <div key={f.feature} className={`feature ${f.drifted ? 'drifted' : ''}`}>
                <h4>
                  {f.feature} {f.drifted && <StateBadge state="DRIFTED" />}
                </h4>
                <Histogram
                  labels={
                    f.categorical
                      ? f.categories.map(String)
                      : f.edges.length
                        ? [num(f.edges[0], 3), ...f.edges.slice(1).map((e) => num(e, 3))]
                        : []
                  }
                  reference={f.referenceCounts}
                  current={f.currentCounts}
                  testId="histogram"
                />
                <div className="legend">
                  <span className="sw ref" /> reference ({f.referenceCount}){' '}
                  <span className="sw cur" /> current ({f.currentCount})
                </div>
                <table className="stats">
                  <tbody>
                    {f.ksStatistic !== null && f.ksStatistic !== undefined && (
                      <tr>
                        <td>KS</td>
                        <td>
                          {num(f.ksStatistic)} (p {num(f.ksPValue ?? null, 3)})
                        </td>
                      </tr>
                    )}
                    <tr>
                      <td>PSI</td>
                      <td>{num(f.psi)}</td>
                    </tr>
                    <tr>
                      <td>JS</td>
                      <td>{num(f.jsDistance)}</td>
                    </tr>
                    {f.wassersteinNormalized !== null && f.wassersteinNormalized !== undefined && (
                      <tr>
                        <td>W / sd</td>
                        <td>{num(f.wassersteinNormalized)}</td>
                      </tr>
                    )}
                    {f.chi2PValue !== null && f.chi2PValue !== undefined && (
                      <tr>
                        <td>χ² p</td>
                        <td>{num(f.chi2PValue, 3)}</td>
                      </tr>
                    )}
                  </tbody>
                </table>
                <div className="muted small">{f.rule}</div>
              </div>
            ))}
          </div>
        </>
      )}
    </Card>
  );
}

function History({ monitorId }: { monitorId: string }) {
  const [{ data, error }] = useQuery({ query: MonitorHistoryDocument, variables: { monitorId } });
  const reports = data?.monitorReports.edges.map((e) => e.node) ?? [];
  const names = [
    ...new Set(
      reports.flatMap((r) =>
        Object.entries(r.metrics ?? {})
          .filter(([, v]) => typeof v === 'number')
          .map(([k]) => k),
      ),
    ),
  ].filter((k) => !['labels', 'predictions', 'rows'].includes(k));
  return (
    <Card title="Over time">
      <ErrorNote error={error} />
      {names.length ? (
        <LineChart
          x={reports.map((r) => Date.parse(r.windowEnd) / 1000)}
          series={names.map((n) => ({
            label: n,
            values: reports.map((r) => {
              const v = r.metrics?.[n];
              return typeof v === 'number' ? v : null;
            }),
          }))}
          xLabel="window end"
          time
          height={180}
          testId="performance-chart"
        />
      ) : (
        <ol className="timeline">
          {reports.map((r) => (
            <li key={r.id} className={r.alerting ? 'bad' : 'ok'}>
              {when(r.windowEnd)} · v{r.version?.version} · {r.summary}
            </li>
          ))}
        </ol>
      )}
    </Card>
  );
}
