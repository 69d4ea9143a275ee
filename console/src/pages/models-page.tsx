import { useEffect, useMemo, useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import { LineChart } from '../charts';
import {
  ModelEventsDocument,
  ModelsDocument,
  RollbackModelDocument,
  TransitionVersionDocument,
  ValidateVersionDocument,
  type ModelEventsSubscription,
  type ModelState,
  type ModelsQuery,
  type VersionRowFragment,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, num, StateBadge, useMay, when } from '../ui';

export default function ModelsPage() {
  const { params } = useLocation();
  const [{ data, error }, refetch] = useQuery({ query: ModelsDocument });
  // Any transition, by anyone, anywhere: shown as it arrives, and the registry read again.
  const [events] = useSubscription(
    { query: ModelEventsDocument },
    (acc: ModelEvent[] | undefined, e) => [e.modelEvents, ...(acc ?? [])].slice(0, 12),
  );
  const latest = events.data?.[0];
  useEffect(() => {
    if (latest) refetch({ requestPolicy: 'network-only' });
  }, [latest, refetch]);
  const models = data?.models.edges.map((e) => e.node) ?? [];
  const name = params.get('model') ?? models[0]?.name;
  const model = models.find((m) => m.name === name);
  return (
    <div className="split narrow-left">
      <Card title="Models">
        <ErrorNote error={error} />
        <ul className="results">
          {models.map((m) => (
            <li key={m.id} className={m.name === name ? 'selected' : ''}>
              <a
                href={`/models?model=${encodeURIComponent(m.name)}`}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(withParams({ model: m.name }));
                }}
              >
                {m.name}{' '}
                <span className="muted">
                  {m.versions.length} versions
                  {m.productionVersion ? ` · production v${m.productionVersion.version}` : ''}
                </span>
              </a>
            </li>
          ))}
        </ul>
        {!models.length && <p className="muted">No models registered.</p>}
        <h3>Transitions (live)</h3>
        <ol className="timeline small" data-testid="model-events">
          {events.data?.map((e, i) => (
            <li key={`${e.at}-${i}`}>
              {e.model}@{e.version} {e.from ?? '∅'} → <strong>{e.to}</strong> by {e.actor}:{' '}
              {e.reason}
            </li>
          ))}
        </ol>
      </Card>
      {model && <ModelView key={model.name} model={model} />}
    </div>
  );
}

type ModelData = ModelsQuery['models']['edges'][number]['node'];
type ModelEvent = ModelEventsSubscription['modelEvents'];

function ModelView({ model }: { model: ModelData }) {
  const mayRollback = useMay('rollbackModel');
  const [rollback, doRollback] = useMutation(RollbackModelDocument);
  const metricNames = useMemo(
    () => [...new Set(model.versions.flatMap((v) => Object.keys(v.metrics)))].sort(),
    [model.versions],
  );
  const [metric, setMetric] = useState<string>('');
  const shown = metric || (metricNames.includes('val_auc') ? 'val_auc' : (metricNames[0] ?? ''));
  return (
    <div>
      <Card
        title={`${model.name}`}
        actions={
          mayRollback &&
          model.productionVersion && (
            <button
              onClick={() =>
                doRollback({ model: model.name, reason: 'rolled back from the console' })
              }
            >
              Roll back production
            </button>
          )
        }
      >
        <ErrorNote error={rollback.error} />
        <p className="muted">
          Gates:{' '}
          {model.gates.length
            ? model.gates
                .map(
                  (g) =>
                    `into ${g.into}: ${g.kind}${g.metric ? ` ${g.metric}` : ''} ≥ ${g.threshold}`,
                )
                .join('; ')
            : 'none'}
        </p>
        <table className="grid" data-testid="versions-table">
          <thead>
            <tr>
              <th>version</th>
              <th>state</th>
              <th>metrics</th>
              <th>evaluation</th>
              <th>created</th>
              <th>actions</th>
            </tr>
          </thead>
          <tbody>
            {[...model.versions].reverse().map((v) => (
              <VersionRow key={v.id} v={v} />
            ))}
          </tbody>
        </table>
      </Card>
      {metricNames.length > 0 && (
        <Card
          title="A metric across versions"
          actions={
            <select name="metric" value={shown} onChange={(e) => setMetric(e.target.value)}>
              {metricNames.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          }
        >
          <LineChart
            x={model.versions.map((v) => v.version)}
            series={[
              {
                label: shown,
                values: model.versions.map((v) =>
                  typeof v.metrics[shown] === 'number' ? (v.metrics[shown] as number) : null,
                ),
              },
            ]}
            xLabel="version"
            integerX
            height={180}
            testId="versions-chart"
          />
        </Card>
      )}
    </div>
  );
}

function VersionRow({ v }: { v: VersionRowFragment }) {
  const mayTransition = useMay('transitionModelVersion');
  const mayValidate = useMay('validateModelVersion');
  const [transition, doTransition] = useMutation(TransitionVersionDocument);
  const [validate, doValidate] = useMutation(ValidateVersionDocument);
  const [datasetId, setDatasetId] = useState(v.dataset?.id ?? '');
  const [open, setOpen] = useState(false);
  const evaluation = v.evaluations[0];
  const targets = v.allowedTransitions.filter((s) => s !== 'VALIDATED');
  return (
    <>
      <tr data-version={v.version} data-state={v.state}>
        <td>
          <button className="link" onClick={() => setOpen(!open)}>
            {open ? '▾' : '▸'} v{v.version}
          </button>
        </td>
        <td>
          <StateBadge state={v.state} />
        </td>
        <td>
          {Object.entries(v.metrics)
            .slice(0, 4)
            .map(([k, x]) => `${k} ${num(x)}`)
            .join(', ')}
        </td>
        <td>
          {evaluation
            ? Object.entries(evaluation.metrics)
                .map(([k, x]) => `${k} ${num(x)}`)
                .join(', ')
            : '—'}
        </td>
        <td>{when(v.createdAt)}</td>
        <td className="actions">
          {mayValidate && v.state === 'REGISTERED' && (
            <span className="row">
              <input
                className="short"
                name="datasetId"
                placeholder="held-out dataset id"
                value={datasetId}
                onChange={(e) => setDatasetId(e.target.value)}
              />
              <button onClick={() => doValidate({ id: v.id, datasetId })}>Validate</button>
            </span>
          )}
          {mayTransition &&
            targets.map((to) => (
              <button
                key={to}
                data-to={to}
                onClick={() =>
                  doTransition({
                    id: v.id,
                    to: to as ModelState,
                    reason: `from the console: ${to}`,
                  })
                }
              >
                → {to}
              </button>
            ))}
        </td>
      </tr>
      {(transition.error || validate.error) && (
        <tr>
          <td colSpan={6}>
            <ErrorNote error={transition.error ?? validate.error} />
          </td>
        </tr>
      )}
      {open && (
        <tr>
          <td colSpan={6}>
            <ol className="timeline">
              {v.transitions.map((t, i) => (
                <li key={i}>
                  {when(t.at)} · {t.from ?? '∅'} → <strong>{t.to}</strong> by {t.actor}: {t.reason}
                  {t.gates.map((g, j) => (
                    <div key={j} className={g.passed ? 'ok' : 'bad'}>
                      gate {g.kind}
                      {g.metric ? ` ${g.metric}` : ''}: {g.detail}
                    </div>
                  ))}
                </li>
              ))}
            </ol>
          </td>
        </tr>
      )}
    </>
  );
}
