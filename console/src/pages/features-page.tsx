import { useState } from 'react';
import { useMutation, useQuery } from 'urql';
import {
  FeatureViewsDocument,
  FreshnessDocument,
  QuarantineDocument,
  ReplayQuarantinedDocument,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, StateBadge, useMay, when } from '../ui';

export default function FeaturesPage() {
  const { params } = useLocation();
  const [{ data, error }, refetch] = useQuery({ query: FeatureViewsDocument });
  const views = data?.featureViews.edges.map((e) => e.node) ?? [];
  const name = params.get('view') ?? views[0]?.name;
  const view = views.find((v) => v.name === name);
  return (
    <div className="split narrow-left">
      <div>
        <Card title="Feature views">
          <ErrorNote error={error} />
          <ul className="results">
            {views.map((v) => (
              <li key={v.id} className={v.name === name ? 'selected' : ''}>
                <a
                  href={`/features?view=${encodeURIComponent(v.name)}`}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(withParams({ view: v.name }));
                  }}
                >
                  {v.name}{' '}
                  <span className="muted">
                    {v.entity} · {v.versions.length} versions
                  </span>
                </a>
              </li>
            ))}
          </ul>
          {!views.length && <p className="muted">No feature views.</p>}
        </Card>
        <Card
          title="Streams"
          actions={
            <button onClick={() => refetch({ requestPolicy: 'network-only' })}>Refresh</button>
          }
        >
          <table className="grid" data-testid="streams">
            <thead>
              <tr>
                <th>source</th>
                <th>lag</th>
                <th>pending</th>
              </tr>
            </thead>
            <tbody>
              {data?.featureStreams.map((s) => (
                <tr key={s.source}>
                  <td>{s.source}</td>
                  <td>{s.lag}</td>
                  <td>{s.pending}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      </div>
      {view && (
        <div>
          <Card title={`${view.name}`}>
            <p className="muted">
              entity {view.entity} · owner {view.owner || '—'}{' '}
              {view.description && `· ${view.description}`}
            </p>
            <table className="grid" data-testid="view-versions">
              <thead>
                <tr>
                  <th>version</th>
                  <th>source</th>
                  <th>features</th>
                  <th>TTL</th>
                  <th>offline (compacted + pending)</th>
                  <th>consumers</th>
                </tr>
              </thead>
              <tbody>
                {[...view.versions].reverse().map((v) => (
                  <tr key={v.id}>
                    <td>
                      {v.ref} {v.retiredAt && <StateBadge state="RETIRED" />}
                    </td>
                    <td>{v.source}</td>
                    <td>
                      {v.features
                        .map(
                          (f) =>
                            `${f.name}${f.aggregation ? ` (${f.aggregation.fn} ${f.aggregation.windowSeconds / 3600} h)` : ''}`,
                        )
                        .join(', ')}
                    </td>
                    <td>{v.ttlSeconds / 3600} h</td>
                    <td>
                      {v.offlineHistory.compactedRows} + {v.offlineHistory.pendingRows}
                    </td>
                    <td>{v.consumers.map((c) => `${c.kind} ${c.name}`).join(', ') || 'none'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Card>
          {view.versions.length > 0 && (
            <Freshness refPrefix={view.versions[view.versions.length - 1].ref} />
          )}
          <Quarantine view={view.name} />
        </div>
      )}
    </div>
  );
}

function Freshness({ refPrefix }: { refPrefix: string }) {
  const [keys, setKeys] = useState('');
  const entityKeys = keys
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const [{ data, error }] = useQuery({
    query: FreshnessDocument,
    variables: { entityKeys, featureRefs: [`${refPrefix}:*`] },
    pause: entityKeys.length === 0,
  });
  return (
    <Card title={`Online values and freshness (${refPrefix})`}>
      <input
        name="entityKeys"
        placeholder="entity keys, comma-separated (e.g. ORD, ATL)"
        value={keys}
        onChange={(e) => setKeys(e.target.value)}
      />
      <ErrorNote error={error} />
      {data && (
        <table className="grid">
          <thead>
            <tr>
              <th>entity</th>
              <th>as of</th>
              <th>values</th>
            </tr>
          </thead>
          <tbody>
            {data.onlineFeatures.map((r) => (
              <tr key={r.entityKey}>
                <td>{r.entityKey}</td>
                <td>
                  {r.freshness.map((f) => (
                    <span key={f.view}>
                      {when(f.asOf)} {f.stale && <StateBadge state="STALE" />}
                    </span>
                  ))}
                </td>
                <td>
                  {r.values
                    .map((v) => `${v.ref.split(':')[1]}=${JSON.stringify(v.value)}`)
                    .join(', ')}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function Quarantine({ view }: { view: string }) {
  const [{ data, error }, refetch] = useQuery({ query: QuarantineDocument, variables: { view } });
  const [replay, doReplay] = useMutation(ReplayQuarantinedDocument);
  const mayReplay = useMay('replayQuarantined');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const records = data?.quarantinedRecords.edges.map((e) => e.node) ?? [];
  return (
    <Card
      title="Quarantine"
      actions={
        mayReplay && (
          <button
            disabled={!picked.size}
            onClick={async () => {
              await doReplay({ ids: [...picked] });
              setPicked(new Set());
              refetch({ requestPolicy: 'network-only' });
            }}
          >
            Replay {picked.size || ''}
          </button>
        )
      }
    >
      <ErrorNote error={error ?? replay.error} />
      {replay.data && (
        <p className="muted">
          {replay.data.replayQuarantined
            .map(
              (r) =>
                `${r.view}@${r.version}: ${r.accepted} accepted, ${r.quarantined} quarantined again`,
            )
            .join('; ')}
        </p>
      )}
      <table className="grid" data-testid="quarantine">
        <thead>
          <tr>
            <th />
            <th>received</th>
            <th>entity</th>
            <th>broken rule</th>
            <th>raw payload</th>
          </tr>
        </thead>
        <tbody>
          {records.map((q) => (
            <tr key={q.id}>
              <td>
                {mayReplay && (
                  <input
                    type="checkbox"
                    aria-label="replay"
                    checked={picked.has(q.id)}
                    onChange={(e) => {
                      const next = new Set(picked);
                      if (e.target.checked) next.add(q.id);
                      else next.delete(q.id);
                      setPicked(next);
                    }}
                  />
                )}
              </td>
              <td>{when(q.createdAt)}</td>
              <td>{q.entityKey ?? '—'}</td>
              <td>
                {q.violations.map((v, i) => (
                  <div key={i}>
                    <strong>{v.rule}</strong>
                    {v.feature ? ` ${v.feature}` : ''}: {v.message}
                  </div>
                ))}
              </td>
              <td>
                <code className="payload">{JSON.stringify(q.payload)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!records.length && <p className="muted">Nothing quarantined.</p>}
    </Card>
  );
}
