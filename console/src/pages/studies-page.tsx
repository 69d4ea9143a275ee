import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import { LineChart } from '../charts';
import {
  CancelStudyDocument,
  StudiesDocument,
  StudyDetailDocument,
  StudyProgressDocument,
  type StudyProgressSubscription,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { storedKey } from '../session';
import { Card, ErrorNote, num, StateBadge, useMay, when } from '../ui';

type Progress = StudyProgressSubscription['studyProgress'];

/**
 * Hyperparameter studies (ADR 0030): every study with its best value, and the open one's
 * trials as they start, report, get pruned and end (`studyProgress`), with the best value
 * so far over the trials, its trials' runs one click away, and its Optuna journal.
 */
export default function StudiesPage() {
  const { params } = useLocation();
  const selected = params.get('study');
  const [{ data, error }, refetch] = useQuery({ query: StudiesDocument });
  const reload = useCallback(() => refetch({ requestPolicy: 'network-only' }), [refetch]);
  const studies = data?.studies.edges.map((e) => e.node) ?? [];
  return (
    <div className="split">
      <div>
        <Card title="Studies">
          <ErrorNote error={error} />
          <table className="grid" data-testid="studies-table">
            <thead>
              <tr>
                <th>name</th>
                <th>status</th>
                <th>search</th>
                <th>trials</th>
                <th>objective</th>
                <th>best</th>
                <th>created</th>
              </tr>
            </thead>
            <tbody>
              {studies.map((s) => (
                <tr
                  key={s.id}
                  data-study={s.id}
                  className={s.id === selected ? 'selected' : ''}
                  onClick={() => navigate(withParams({ study: s.id }))}
                >
                  <td>{s.name}</td>
                  <td>
                    <StateBadge state={s.status} />
                    {s.trialsRunning > 0 && <span className="pulse" title="trials running" />}
                  </td>
                  <td>
                    {s.sampler}
                    {s.pruner.kind !== 'NONE' ? ` · ${s.pruner.kind}` : ''}
                  </td>
                  <td>
                    {s.trialsStarted} / {s.budget.trials}
                  </td>
                  <td>
                    {s.objective.metric} {s.objective.direction === 'MINIMIZE' ? '↓' : '↑'}
                  </td>
                  <td>
                    {s.bestTrial ? `${num(s.bestTrial.value)} (#${s.bestTrial.number})` : '—'}
                  </td>
                  <td>{when(s.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {!studies.length && !error && <p className="muted">No studies.</p>}
        </Card>
      </div>
      {selected && <StudyDetail key={selected} id={selected} onChange={reload} />}
    </div>
  );
}

function StudyDetail({ id, onChange }: { id: string; onChange: () => void }) {
  const [{ data, error }, refetch] = useQuery({ query: StudyDetailDocument, variables: { id } });
  // Only the newest event is kept: its counts are the study's now.
  const [progress] = useSubscription(
    { query: StudyProgressDocument, variables: { study: id } },
    (_acc: Progress | undefined, e) => e.studyProgress,
  );
  const last = progress.data;
  // Each event after the first snapshot changed a trial or the study: the study is read again
  // (at most every 500 ms, as reports come every pass), the list only when a trial or the
  // study ended or started.
  const lastRead = useRef(0);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    if (!last || last.kind === 'SNAPSHOT') return;
    if (last.kind !== 'TRIAL_REPORTED') onChange();
    if (pending.current) return;
    const wait = Math.max(0, lastRead.current + 500 - Date.now());
    pending.current = setTimeout(() => {
      pending.current = null;
      lastRead.current = Date.now();
      refetch({ requestPolicy: 'network-only' });
    }, wait);
  }, [last, refetch, onChange]);
  useEffect(
    () => () => {
      if (pending.current) clearTimeout(pending.current);
    },
    [],
  );
  const [cancel, doCancel] = useMutation(CancelStudyDocument);
  const mayCancel = useMay('cancelStudy');
  const [journalError, setJournalError] = useState<string | null>(null);
  const study = data?.study;
  const status = last?.status ?? study?.status;

  // Each ended trial's value by number, and the best so far after it.
  const chart = useMemo(() => {
    const done = (study?.trials ?? [])
      .filter((t) => t.state === 'COMPLETE' && typeof t.value === 'number')
      .sort((a, b) => a.number - b.number);
    const better = (a: number, b: number) =>
      study?.objective.direction === 'MINIMIZE' ? a < b : a > b;
    let best: number | null = null;
    const bests = done.map((t) => {
      const v = t.value as number;
      if (best === null || better(v, best)) best = v;
      return best;
    });
    return {
      x: done.map((t) => t.number),
      series: [
        { label: study?.objective.metric ?? 'value', values: done.map((t) => t.value ?? null) },
        { label: 'best so far', values: bests },
      ],
    };
  }, [study]);

  const journal = async () => {
    setJournalError(null);
    const res = await fetch(`/studies/${encodeURIComponent(id)}/optuna-journal.log`, {
      headers: { authorization: `Bearer ${storedKey() ?? ''}` },
    });
    if (!res.ok) {
      setJournalError(`The journal could not be read: HTTP ${res.status}`);
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = `${study?.name ?? 'study'}.optuna-journal.log`;
    a.click();
    // Revoked once the browser has taken the download (some cancel it if revoked at once).
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  return (
    <Card
      title={study ? `Study ${study.name}` : 'Study'}
      actions={
        <div className="row">
          {status && <StateBadge state={status} />}
          {mayCancel && status === 'RUNNING' && (
            <button onClick={() => doCancel({ id })}>Cancel</button>
          )}
          <button onClick={() => void journal()}>Optuna journal</button>
          <button onClick={() => navigate(withParams({ study: null }))}>Close</button>
        </div>
      }
    >
      <ErrorNote error={error ?? cancel.error} />
      {journalError && <div className="error">{journalError}</div>}
      {study && (
        <>
          <p className="muted">
            {study.trainer
              ? `${study.trainer.name} on ${study.dataset?.name ?? '—'}`
              : 'ask and tell'}
            {study.dataset && study.dataset.status !== 'READY' && (
              <>
                {' '}
                <StateBadge state={study.dataset.status} />
              </>
            )}{' '}
            · {study.objective.direction === 'MINIMIZE' ? 'minimise' : 'maximise'}{' '}
            {study.objective.metric} · {study.sampler}
            {study.pruner.kind !== 'NONE' ? ` with ${study.pruner.kind} pruning` : ''} ·{' '}
            {study.parallelism} at a time · seed {study.seed}
          </p>
          {study.error && <div className="error">{study.error}</div>}
          <p data-testid="study-counts">
            <span data-testid="trials-started">{last?.trialsStarted ?? study.trialsStarted}</span>{' '}
            of {study.budget.trials} trials started
            {last &&
              ` · ${last.trialsRunning} running · ${last.trialsComplete} complete · ${last.trialsPruned} pruned · ${last.trialsFailed} failed${last.trialsPaused ? ` · ${last.trialsPaused} paused` : ''}`}
          </p>
          <p>
            Best {study.objective.metric}:{' '}
            <strong data-testid="best-value">
              {study.bestTrial ? num(study.bestTrial.value) : '—'}
            </strong>
            {study.bestTrial && ` (trial #${study.bestTrial.number})`}
          </p>
          <h3>Objective by trial</h3>
          <LineChart
            x={chart.x}
            series={chart.series}
            xLabel="trial"
            integerX
            testId="study-chart"
          />
          <h3>Trials</h3>
          <table className="grid" data-testid="trials-table">
            <thead>
              <tr>
                <th>#</th>
                <th>state</th>
                <th>{study.objective.metric}</th>
                <th>epochs</th>
                <th>parameters</th>
                <th>run</th>
              </tr>
            </thead>
            <tbody>
              {[...study.trials]
                .sort((a, b) => a.number - b.number)
                .map((t) => (
                  <tr key={t.id} data-trial={t.number} data-state={t.state}>
                    <td>{t.number}</td>
                    <td>
                      <StateBadge state={t.state} />
                      {t.prunedAtEpoch !== null && t.prunedAtEpoch !== undefined
                        ? ` at epoch ${t.prunedAtEpoch}`
                        : ''}
                      {t.rung !== null && t.rung !== undefined ? ` · rung ${t.rung}` : ''}
                    </td>
                    <td>{num(t.value)}</td>
                    <td>{t.epochsTrained || '—'}</td>
                    <td className="mono">{paramsText(t.params)}</td>
                    <td>
                      {t.run ? (
                        <button
                          onClick={() => navigate(`/runs?run=${encodeURIComponent(t.run!.id)}`)}
                        >
                          {t.run.status}
                        </button>
                      ) : t.asked ? (
                        'asked'
                      ) : (
                        '—'
                      )}
                    </td>
                  </tr>
                ))}
            </tbody>
          </table>
          {!study.trials.length && <p className="muted">No trials yet.</p>}
        </>
      )}
    </Card>
  );
}

/** Sampled parameters, numbers to four significant digits. */
function paramsText(params: Record<string, unknown>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? num(v) : JSON.stringify(v)}`)
    .join(' ');
}
