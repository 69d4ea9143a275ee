import {
  AskTrialDocument,
  CancelStudyDocument,
  CreateStudyDocument,
  StudyProgressDocument,
  type StudyProgressSubscription,
  TellTrialDocument,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * `studyProgress` over WebSocket (ADR 0030): the study's state first, then each trial started,
 * pruned or ended with the counts and best trial after it, published through the outbox in
 * the change's transaction; the subscription completes once the study has ended and none of
 * its trials is open. A subscriber that arrives after the end gets the final state and done.
 */
let app: TestApp;
let gql: GraphQLTestClient;

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
});

afterAll(() => app.stop());

type Progress = StudyProgressSubscription['studyProgress'];

async function study(name: string, trials: number): Promise<string> {
  return (
    await gql.ok(CreateStudyDocument, {
      input: {
        name,
        space: [{ name: 'x', kind: 'FLOAT', low: 0, high: 1 }],
        objective: { metric: 'loss', direction: 'MINIMIZE' },
        sampler: 'RANDOM',
        budget: { trials },
      },
    })
  ).createStudy.id;
}

it('reports trials started, pruned and finished with the best so far, then completes', async () => {
  const id = await study('progress-ask-tell', 3);
  const ws = gql.ws();
  const sub = collect(ws, StudyProgressDocument, { study: id });
  await sub.next(1);
  const ask = async () => (await gql.ok(AskTrialDocument, { studyId: id })).askTrial;
  const a = await ask();
  const b = await ask();
  await gql.ok(TellTrialDocument, { trialId: a.id, input: { value: 0.7 } });
  await gql.ok(TellTrialDocument, { trialId: b.id, input: { pruned: true } });
  const c = await ask();
  await gql.ok(TellTrialDocument, { trialId: c.id, input: { value: 0.2 } });
  await sub.completed;
  await ws.dispose();
  expect(sub.errors).toEqual([]);
  const seen: Progress[] = sub.events.map((e) => e.studyProgress);
  expect(seen.every((e) => e.studyId === id)).toBe(true);
  expect(
    seen.map((e) => [e.kind, e.trial?.number ?? null, e.trial?.state ?? null, e.bestValue]),
  ).toEqual([
    ['SNAPSHOT', null, null, null],
    ['TRIAL_STARTED', 0, 'RUNNING', null],
    ['TRIAL_STARTED', 1, 'RUNNING', null],
    ['TRIAL_FINISHED', 0, 'COMPLETE', 0.7],
    ['TRIAL_PRUNED', 1, 'PRUNED', 0.7],
    ['TRIAL_STARTED', 2, 'RUNNING', 0.7],
    ['TRIAL_FINISHED', 2, 'COMPLETE', 0.2],
    ['STUDY_ENDED', null, null, 0.2],
  ]);
  expect(seen[2]).toMatchObject({ trialsStarted: 2, trialsRunning: 2 });
  expect(seen[4]).toMatchObject({ trialsRunning: 0, trialsComplete: 1, trialsPruned: 1 });
  expect(seen[7]).toMatchObject({
    status: 'COMPLETED',
    trialsStarted: 3,
    trialsComplete: 2,
    trialsPruned: 1,
    bestTrialId: c.id,
  });

  // Late: the final state, and the subscription completes at once.
  const ws2 = gql.ws();
  const late = collect(ws2, StudyProgressDocument, { study: id });
  await late.completed;
  await ws2.dispose();
  expect(late.events.map((e) => e.studyProgress)).toEqual([
    { ...seen[7], kind: 'SNAPSHOT', trial: null },
  ]);
});

it('ends a cancelled study with its open trials cancelled', async () => {
  const id = await study('progress-cancel', 5);
  const ws = gql.ws();
  const sub = collect(ws, StudyProgressDocument, { study: id });
  await sub.next(1);
  // Asked once the snapshot is in: an event committed before a subscription starts may still
  // be relayed after its snapshot (at least once: it repeats what the snapshot holds).
  const a = (await gql.ok(AskTrialDocument, { studyId: id })).askTrial;
  await gql.ok(CancelStudyDocument, { id });
  await sub.completed;
  await ws.dispose();
  expect(sub.errors).toEqual([]);
  const seen: Progress[] = sub.events.map((e) => e.studyProgress);
  expect(seen[0]).toMatchObject({ kind: 'SNAPSHOT', status: 'RUNNING', trialsRunning: 0 });
  // A cancelled study's open trials end after it: it completes on the last of them.
  expect(seen.map((e) => [e.kind, e.status, e.trial?.id ?? null, e.trialsRunning])).toEqual([
    ['SNAPSHOT', 'RUNNING', null, 0],
    ['TRIAL_STARTED', 'RUNNING', a.id, 1],
    ['STUDY_ENDED', 'CANCELLED', null, 1],
    ['TRIAL_FINISHED', 'CANCELLED', a.id, 0],
  ]);
  expect(seen[3].trialsCancelled).toBe(1);
});
