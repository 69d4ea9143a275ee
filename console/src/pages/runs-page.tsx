import { useEffect, useMemo, useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import { LineChart, type Series } from '../charts';
import {
  CancelRunDocument,
  CompareRunsDocument,
  RunDetailDocument,
  RunProgressDocument,
  RunsDocument,
  RunUpdatesDocument,
  type RunProgressSubscription,
  type RunRowFragment,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, num, StateBadge, useMay, when } from '../ui';

const BASE_COLUMNS = ['experiment', 'trainer', 'status', 'created', 'duration', 'epochs', 'gpus'];
const COLUMNS_KEY = 'aether.runs.columns';

function cell(r: RunRowFragment, col: string): string | number | null {
  switch (col) {
    case 'experiment':
      return r.experiment;
    case 'trainer':
      return r.trainer.name;
    case 'status':
      return r.status;
    case 'created':
      return r.createdAt;
    case 'duration':
      return r.durationSeconds ?? null;
    case 'epochs':
      return r.epochsDone;
    case 'gpus':
      return r.gpuCount;
    default: {
      const v = r.metrics[col];
      return typeof v === 'number' ? v : null;
    }
  }
}

function show(r: RunRowFragment, col: string) {
  switch (col) {
    case 'status':
      return (
        <>
          <StateBadge state={r.status} />
          {r.status === 'RUNNING' && <span className="pulse" title="running" />}
          {r.status === 'QUEUED' && r.queuePosition ? ` #${r.queuePosition}` : ''}
        </>
      );
    case 'created':
      return when(r.createdAt);
    case 'duration':
      return r.durationSeconds === null || r.durationSeconds === undefined
        ? '—'
        : `${r.durationSeconds.toFixed(1)} s`;
    case 'epochs':
      return `${r.epochsDone}${r.epochsTotal ? ` / ${r.epochsTotal}` : ''}`;
    default: {
      const v = cell(r, col);
      return typeof v === 'number' ? num(v) : (v ?? '—');
    }
  }
}

/** Columns chosen once stay chosen (this browser's local storage). */
function useColumns(): [string[], (c: string[]) => void] {
  const [cols, setCols] = useState<string[]>(() => {
    try {
      const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) ?? 'null') as unknown;
      if (Array.isArray(saved) && saved.every((c) => typeof c === 'string')) return saved;
    } catch {
      // a damaged entry falls back to the defaults
    }
    return [...BASE_COLUMNS, 'val_auc', 'val_loss'];
  });
  return [
    cols,
    (c) => {
      localStorage.setItem(COLUMNS_KEY, JSON.stringify(c));
      setCols(c);
    },
  ];
}

export default function RunsPage() {
  const { params } = useLocation();
  const selectedRun = params.get('run');
  const [{ data, error }] = useQuery({ query: RunsDocument, variables: {} });
  // Every run's changes, live: state, epochs and metrics update in place.
  const [live] = useSubscription(
    { query: RunUpdatesDocument },
    (acc: Map<string, RunRowFragment> | undefined, e) =>
      new Map(acc ?? []).set(e.runUpdates.id, e.runUpdates),
  );
  // The open run's epochs as they end, so its row moves with its curve.
  const [progressOf, setProgressOf] = useState<{
    id: string;
    epoch: number;
    metrics: Record<string, unknown>;
  } | null>(null);
  const runs = useMemo(() => {
    const byId = new Map<string, RunRowFragment>();
    for (const e of data?.runs.edges ?? []) byId.set(e.node.id, e.node);
    for (const [id, r] of live.data ?? []) byId.set(id, r);
    const open = progressOf && byId.get(progressOf.id);
    if (open && open.status === 'RUNNING' && progressOf.epoch > open.epochsDone)
      byId.set(open.id, {
        ...open,
        epochsDone: progressOf.epoch,
        metrics: { ...open.metrics, ...progressOf.metrics },
      });
    return [...byId.values()];
  }, [data, live.data, progressOf]);

  const [columns, setColumns] = useColumns();
  const [sort, setSort] = useState<{ col: string; desc: boolean }>({ col: 'created', desc: true });
  const [filter, setFilter] = useState('');
  const [status, setStatus] = useState('');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [comparing, setComparing] = useState<string[] | null>(null);
  const [choosing, setChoosing] = useState(false);

  const metricNames = useMemo(
    () => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(),
    [runs],
  );
  const rows = useMemo(() => {
    const f = filter.toLowerCase();
    const out = runs.filter(
      (r) =>
        (!status || r.status === status) &&
        (!f || `${r.experiment} ${r.trainer.name} ${r.id}`.toLowerCase().includes(f)),
    );
    out.sort((a, b) => {
      const x = cell(a, sort.col);
      const y = cell(b, sort.col);
      const c = x === null ? 1 : y === null ? -1 : x < y ? -1 : x > y ? 1 : 0;
      return sort.desc && x !== null && y !== null ? -c : c;
    });
    return out;
  }, [runs, filter, status, sort]);

  return (
    <div className="split">
      <div>
        <Card
          title="Runs"
          actions={
            <div className="row">
              <input
                name="runFilter"
                placeholder="filter experiment, trainer, id"
                value={filter}
                onChange={(e) => setFilter(e.target.value)}
              />
              <select name="status" value={status} onChange={(e) => setStatus(e.target.value)}>
                <option value="">any status</option>
                {['PENDING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'].map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
              <button onClick={() => setChoosing(!choosing)}>Columns</button>
              <button disabled={picked.size < 2} onClick={() => setComparing([...picked])}>
                Compare {picked.size || ''}
              </button>
            </div>
          }
        >
          <ErrorNote error={error} />
          {choosing && (
            <div className="chooser" data-testid="column-chooser">
              {[...BASE_COLUMNS, ...metricNames.filter((m) => !BASE_COLUMNS.includes(m))].map(
                (c) => (
                  <label key={c}>
                    <input
                      type="checkbox"
                      checked={columns.includes(c)}
                      onChange={(e) =>
                        setColumns(
                          e.target.checked ? [...columns, c] : columns.filter((x) => x !== c),
                        )
                      }
                    />{' '}
                    {c}
                  </label>
                ),
              )}
            </div>
          )}
          <table className="grid" data-testid="runs-table">
            <thead>
              <tr>
                <th />
                {columns.map((c) => (
                  <th
                    key={c}
                    className="sortable"
                    onClick={() => setSort({ col: c, desc: sort.col === c ? !sort.desc : true })}
                  >
                    {c}
                    {sort.col === c ? (sort.desc ? ' ▼' : ' ▲') : ''}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr
                  key={r.id}
                  className={r.id === selectedRun ? 'selected' : ''}
                  data-run={r.id}
                  data-status={r.status}
                  onClick={() => navigate(withParams({ run: r.id }))}
                >
                  <td onClick={(e) => e.stopPropagation()}>
                    <input
                      type="checkbox"
                      aria-label="compare"
                      checked={picked.has(r.id)}
                      onChange={(e) => {
                        const next = new Set(picked);
                        if (e.target.checked) next.add(r.id);
                        else next.delete(r.id);
                        setPicked(next);
                      }}
                    />
                  </td>
                  {columns.map((c) => (
                    <td key={c}>{show(r, c)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          {!rows.length && <p className="muted">No runs.</p>}
        </Card>
        {comparing && <Compare runIds={comparing} onClose={() => setComparing(null)} />}
      </div>
      {selectedRun && <RunDetail id={selectedRun} onEpoch={setProgressOf} />}
    </div>
  );
}

function Compare({ runIds, onClose }: { runIds: string[]; onClose: () => void }) {
  const [sortBy, setSortBy] = useState('val_auc');
  const [{ data, error }] = useQuery({ query: CompareRunsDocument, variables: { runIds, sortBy } });
  const c = data?.compareRuns;
  return (
    <Card title="Side by side" actions={<button onClick={onClose}>Close</button>}>
      <ErrorNote error={error} />
      {c && (
        <table className="grid" data-testid="compare-table">
          <thead>
            <tr>
              <th>run</th>
              {c.columns.map((col) => (
                <th key={col} className="sortable" onClick={() => setSortBy(col)}>
                  {col}
                  {col === sortBy ? ' ▼' : ''}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {c.rows.map((r) => (
              <tr key={r.run.id}>
                <td>
                  {r.run.experiment} / {r.run.trainer.name}
                </td>
                {r.values.map((v, i) => (
                  <td key={i}>{num(v)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

type Point = { epoch: number; name: string; value: number };

function RunDetail({
  id,
  onEpoch,
}: {
  id: string;
  onEpoch: (p: { id: string; epoch: number; metrics: Record<string, unknown> }) => void;
}) {
  const [{ data, error }, refetch] = useQuery({ query: RunDetailDocument, variables: { id } });
  // Epochs as they end; joined with the history already stored.
  const [progress] = useSubscription(
    { query: RunProgressDocument, variables: { runId: id } },
    (acc: RunProgressSubscription['runProgress'][] | undefined, e) => [
      ...(acc ?? []),
      e.runProgress,
    ],
  );
  const last = progress.data?.[progress.data.length - 1];
  useEffect(() => {
    if (!last) return;
    if (last.status !== 'RUNNING') refetch({ requestPolicy: 'network-only' });
    else if (last.epoch > 0) onEpoch({ id, epoch: last.epoch, metrics: last.metrics });
  }, [last, refetch, onEpoch, id]);
  const [cancel, doCancel] = useMutation(CancelRunDocument);
  const mayCancel = useMay('cancelTrainingJob');
  const run = data?.run;

  const { x, series } = useMemo(() => {
    const points: Point[] = (run?.history ?? []).filter(
      (p) => p.step === null || p.step === undefined,
    );
    for (const e of progress.data ?? [])
      for (const [name, value] of Object.entries(e.metrics))
        if (typeof value === 'number') points.push({ epoch: e.epoch, name, value });
    const epochs = [...new Set(points.map((p) => p.epoch))].sort((a, b) => a - b);
    const names = [...new Set(points.map((p) => p.name))].sort();
    const at = new Map(points.map((p) => [`${p.name}@${p.epoch}`, p.value]));
    return {
      x: epochs,
      series: names.map<Series>((n) => ({
        label: n,
        values: epochs.map((ep) => at.get(`${n}@${ep}`) ?? null),
      })),
    };
  }, [run?.history, progress.data]);
  const losses = series.filter((s) => /loss/.test(s.label));
  const others = series.filter((s) => !/loss/.test(s.label));
  const hw = run?.hardware ?? [];

  return (
    <Card
      title={run ? `${run.experiment} / ${run.trainer.name}` : 'Run'}
      actions={
        <div className="row">
          {run && <StateBadge state={last?.status ?? run.status} />}
          {mayCancel && run && ['QUEUED', 'RUNNING', 'PENDING'].includes(run.status) && (
            <button onClick={() => doCancel({ id })}>Cancel</button>
          )}
          <button onClick={() => navigate(withParams({ run: null }))}>Close</button>
        </div>
      }
    >
      <ErrorNote error={error ?? cancel.error} />
      {run && (
        <>
          <p className="muted">
            Epoch <span data-testid="epochs-done">{last?.epoch ?? run.epochsDone}</span>
            {run.epochsTotal ? ` of ${run.epochsTotal}` : ''} · started {when(run.startedAt)}
            {run.modelVersion &&
              ` · registered as ${run.modelVersion.model}@${run.modelVersion.version}`}
          </p>
          {run.error && <div className="error">{run.error}</div>}
          <h3>Loss</h3>
          <LineChart x={x} series={losses} xLabel="epoch" integerX testId="loss-chart" />
          {others.length > 0 && (
            <>
              <h3>Metrics</h3>
              <LineChart x={x} series={others} xLabel="epoch" integerX testId="metric-chart" />
            </>
          )}
          <h3>Hardware</h3>
          {hw.length ? (
            <LineChart
              x={hw.map((h) => Date.parse(h.at) / 1000)}
              series={[
                { label: 'cpu %', values: hw.map((h) => h.cpuPercent ?? null) },
                { label: 'memory MB', values: hw.map((h) => h.memoryMb ?? null) },
                ...[...new Set(hw.flatMap((h) => h.gpus.map((g) => g.index)))].map((i) => ({
                  label: `gpu${i} %`,
                  values: hw.map(
                    (h) => h.gpus.find((g) => g.index === i)?.utilizationPercent ?? null,
                  ),
                })),
              ]}
              xLabel="time"
              time
              height={160}
            />
          ) : (
            <p className="muted">No hardware samples yet.</p>
          )}
          <h3>Checkpoints</h3>
          <table className="grid">
            <tbody>
              {run.checkpoints.map((c) => (
                <tr key={c.epoch}>
                  <td>epoch {c.epoch}</td>
                  <td>{when(c.createdAt)}</td>
                  <td>{(c.artifact.size / 1024).toFixed(1)} KiB</td>
                  <td className="mono">{c.artifact.sha256.slice(0, 12)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {!run.checkpoints.length && <p className="muted">None.</p>}
          <h3>Hyperparameters</h3>
          <pre>{JSON.stringify(run.hyperparameters, null, 1)}</pre>
        </>
      )}
    </Card>
  );
}
