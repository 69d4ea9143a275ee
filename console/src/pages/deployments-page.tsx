import { useEffect, useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import {
  DeploymentDetailDocument,
  DeploymentEventsDocument,
  DeploymentsDocument,
  ReviewCanariesDocument,
  type DeploymentEventsSubscription,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, num, pct, StateBadge, useMay, when } from '../ui';

type DeploymentEvent = DeploymentEventsSubscription['deploymentEvents'];

export default function DeploymentsPage() {
  const { params } = useLocation();
  const [{ data, error }] = useQuery({ query: DeploymentsDocument });
  const list = data?.deployments.edges.map((e) => e.node) ?? [];
  const endpoint = params.get('endpoint') ?? list[0]?.endpoint;
  return (
    <div className="split narrow-left">
      <Card title="Endpoints">
        <ErrorNote error={error} />
        <ul className="results">
          {list.map((d) => (
            <li key={d.id} className={d.endpoint === endpoint ? 'selected' : ''}>
              <a
                href={`/deployments?endpoint=${encodeURIComponent(d.endpoint)}`}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(withParams({ endpoint: d.endpoint }));
                }}
              >
                {d.endpoint} <span className="muted">{d.model?.name}</span>
              </a>
            </li>
          ))}
        </ul>
        {!list.length && <p className="muted">No deployments.</p>}
      </Card>
      {endpoint && <Endpoint key={endpoint} endpoint={endpoint} />}
    </div>
  );
}

function Endpoint({ endpoint }: { endpoint: string }) {
  const [{ data, error }, refetch] = useQuery({
    query: DeploymentDetailDocument,
    variables: { endpoint },
  });
  // Decisions as the controllers make them; the share moves with each CANARY_STEP.
  const [events] = useSubscription(
    { query: DeploymentEventsDocument, variables: { endpoint } },
    (acc: DeploymentEvent[] | undefined, e) => [e.deploymentEvents, ...(acc ?? [])].slice(0, 200),
  );
  const latest = events.data?.[0];
  const [liveShare, setLiveShare] = useState<number | null>(null);
  useEffect(() => {
    if (!latest) return;
    if (latest.kind === 'CANARY_STEP' && typeof latest.share === 'number')
      setLiveShare(latest.share);
    else setLiveShare(null);
    refetch({ requestPolicy: 'network-only' });
  }, [latest, refetch]);
  // Traffic figures are windows over the last minute: read again every few seconds.
  useEffect(() => {
    const t = setInterval(() => refetch({ requestPolicy: 'network-only' }), 5_000);
    return () => clearInterval(t);
  }, [refetch]);
  const [review, doReview] = useMutation(ReviewCanariesDocument);
  const mayReview = useMay('reviewCanaries');

  const s = data?.deployment;
  const d = s?.deployment;
  const canary = s?.versions.find((v) => v.role === 'CANARY');
  const share = canary ? (liveShare ?? d?.canaryShare ?? 0) : 0;
  const shareOf = (role: string, versionId: string) => {
    if (d?.abArms.length) {
      const total = d.abArms.reduce((a, b) => a + b.weight, 0) || 1;
      const arm = d.abArms.find((a) => a.versionId === versionId);
      if (arm) return arm.weight / total;
    }
    if (role === 'CANARY') return share;
    if (role === 'PRODUCTION') return 1 - share;
    return 0;
  };
  return (
    <div>
      <Card
        title={
          <>
            {endpoint} {s && <StateBadge state={s.ready ? 'READY' : 'WARMING'} />}
          </>
        }
        actions={mayReview && <button onClick={() => doReview({})}>Review canaries now</button>}
      >
        <ErrorNote error={error ?? review.error} />
        {review.data && (
          <p className="muted">
            {review.data.reviewCanaries
              .filter((r) => r.endpoint === endpoint)
              .map((r) => `${r.action}: ${r.reason}`)
              .join('; ') || 'no canary to judge'}
          </p>
        )}
        {s && d && (
          <>
            <table className="grid" data-testid="served-versions">
              <thead>
                <tr>
                  <th>version</th>
                  <th>role</th>
                  <th>share</th>
                  <th>replicas</th>
                  <th>req/s (1 min)</th>
                  <th>error rate</th>
                  <th>p99</th>
                </tr>
              </thead>
              <tbody>
                {s.versions.map((v) => {
                  const t = data.deploymentTraffic.find((x) => x.version?.id === v.version.id);
                  return (
                    <tr key={`${v.role}-${v.version.id}`} data-role={v.role}>
                      <td>
                        {v.version.model}@{v.version.version}{' '}
                        {!v.ready && <StateBadge state="WARMING" />}
                      </td>
                      <td>
                        <StateBadge state={v.role} />
                      </td>
                      <td>{v.role === 'SHADOW' ? 'copies' : pct(shareOf(v.role, v.version.id))}</td>
                      <td>{v.replicas}</td>
                      <td>{t ? t.rate.toFixed(2) : '—'}</td>
                      <td>{t ? pct(t.errorRate) : '—'}</td>
                      <td>
                        {t?.p99Ms !== null && t?.p99Ms !== undefined
                          ? `${num(t.p99Ms, 3)} ms`
                          : '—'}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            {canary && (
              <div className="ramp" data-testid="canary-ramp" data-share={share}>
                <div className="ramp-head">
                  Canary {canary.version.model}@{canary.version.version}:{' '}
                  <strong data-testid="canary-share">{pct(share)}</strong> of request keys
                </div>
                <div className="ramp-bar">
                  <div className="ramp-fill" style={{ width: `${share * 100}%` }} />
                  {d.canaryPolicy.steps.map((st) => (
                    <span
                      key={st}
                      className="ramp-step"
                      style={{ left: `${st * 100}%` }}
                      title={`step ${pct(st)}`}
                    />
                  ))}
                </div>
                <div className="muted">
                  steps {d.canaryPolicy.steps.map((x) => pct(x)).join(' → ')}, every{' '}
                  {d.canaryPolicy.stepMs / 1000} s while healthy; rolled back past +
                  {pct(d.canaryPolicy.maxErrorRateDelta)} errors or ×{d.canaryPolicy.maxP99Ratio}{' '}
                  p99
                </div>
              </div>
            )}
            <p className="muted">
              Autoscaling {d.autoscalePolicy.minReplicas}–{d.autoscalePolicy.maxReplicas} replicas,
              p99 target {d.autoscalePolicy.targetP99Ms} ms, queue{' '}
              {d.autoscalePolicy.scaleUpQueueDepth} per replica.
            </p>
          </>
        )}
      </Card>
      <Card title="Shadow comparison (last hour)">
        {data?.shadowComparison.length ? (
          <table className="grid">
            <thead>
              <tr>
                <th>shadow</th>
                <th>pairs</th>
                <th>mean |Δ|</th>
                <th>max |Δ|</th>
                <th>agreement</th>
              </tr>
            </thead>
            <tbody>
              {data.shadowComparison.map((c, i) => (
                <tr key={i}>
                  <td>v{c.shadow?.version ?? '?'}</td>
                  <td>{c.pairs}</td>
                  <td>{num(c.meanAbsDiff)}</td>
                  <td>{num(c.maxAbsDiff)}</td>
                  <td>{pct(c.agreement)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p className="muted">No shadow traffic.</p>
        )}
      </Card>
      <Card title="Decisions (live)">
        <ol className="timeline" data-testid="deployment-events">
          {events.data?.map((e, i) => (
            <li key={i} data-kind={e.kind}>
              {when(e.at)} · <strong>{e.kind}</strong>
              {typeof e.share === 'number' ? ` → ${pct(e.share)}` : ''}
              {typeof e.replicas === 'number' ? ` → ${e.replicas} replicas` : ''} · {e.detail}
            </li>
          ))}
        </ol>
        {!events.data?.length && (
          <p className="muted">Waiting for canary steps, rollbacks, promotions and scaling…</p>
        )}
      </Card>
    </div>
  );
}
