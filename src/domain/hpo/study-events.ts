import { bestTrial, type Study, StudyStatus, type Trial, TrialState } from './study';

/** What happened to a study, as its `studyProgress` subscribers see it. */
export enum StudyEventKind {
  /** The state when the subscription began. */
  SNAPSHOT = 'SNAPSHOT',
  TRIAL_STARTED = 'TRIAL_STARTED',
  /** Its runs reported epochs since the last event: the newest one's objective is `trial.epochValue`. */
  TRIAL_REPORTED = 'TRIAL_REPORTED',
  TRIAL_PRUNED = 'TRIAL_PRUNED',
  /** ASHA: reached its rung's epochs and waits there to be promoted. */
  TRIAL_PAUSED = 'TRIAL_PAUSED',
  /** ASHA: promoted to the next rung, resuming from its checkpoint. */
  TRIAL_PROMOTED = 'TRIAL_PROMOTED',
  /** Ended COMPLETE, FAILED or CANCELLED. */
  TRIAL_FINISHED = 'TRIAL_FINISHED',
  /** COMPLETED or CANCELLED (a cancelled study's open trials end after it). */
  STUDY_ENDED = 'STUDY_ENDED',
}

export interface StudyEvent {
  kind: StudyEventKind;
  studyId: string;
  status: StudyStatus;
  /** The trial the event is about; null for SNAPSHOT and STUDY_ENDED. */
  trial: {
    id: string;
    number: number;
    state: TrialState;
    value: number | null;
    /** The newest epoch its runs reported, and the objective there; null before the first. */
    epoch: number | null;
    epochValue: number | null;
  } | null;
  trialsStarted: number;
  trialsRunning: number;
  /** ASHA: waiting at a rung. */
  trialsPaused: number;
  trialsComplete: number;
  trialsPruned: number;
  trialsFailed: number;
  trialsCancelled: number;
  /** The best COMPLETE trial so far. */
  bestTrialId: string | null;
  bestValue: number | null;
}

/** Each study's events travel on a topic of their own. */
export const studyTopic = (studyId: string) => `study:${studyId}`;

/** The event for `kind` about `trial`, with the study's counts and best trial after it. */
export function studyEvent(
  kind: StudyEventKind,
  study: Study,
  trials: readonly Trial[],
  trial: Trial | null,
): StudyEvent {
  const count = (s: TrialState) => trials.filter((t) => t.state === s).length;
  const best = bestTrial(trials, study.objective.direction);
  return {
    kind,
    studyId: study.id,
    status: study.status,
    trial: trial
      ? {
          id: trial.id,
          number: trial.number,
          state: trial.state,
          value: trial.value,
          epoch: trial.intermediate.at(-1)?.epoch ?? null,
          epochValue: trial.intermediate.at(-1)?.value ?? null,
        }
      : null,
    trialsStarted: trials.length,
    trialsRunning: count(TrialState.RUNNING),
    trialsPaused: count(TrialState.PAUSED),
    trialsComplete: count(TrialState.COMPLETE),
    trialsPruned: count(TrialState.PRUNED),
    trialsFailed: count(TrialState.FAILED),
    trialsCancelled: count(TrialState.CANCELLED),
    bestTrialId: best?.id ?? null,
    bestValue: best?.value ?? null,
  };
}

/** No more events will come: the study has ended and none of its trials is open. */
export function isLastEvent(e: StudyEvent): boolean {
  return e.status !== StudyStatus.RUNNING && e.trialsRunning === 0 && e.trialsPaused === 0;
}
