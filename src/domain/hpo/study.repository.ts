import { type Page, type PageRequest } from '../shared/pagination';
import {
  type IntermediateValue,
  type Study,
  type StudyStatus,
  type Trial,
  type TrialState,
} from './study';

export type NewStudy = Omit<
  Study,
  | 'id'
  | 'status'
  | 'trialsStarted'
  | 'trialsActive'
  | 'gpuSecondsUsed'
  | 'error'
  | 'createdAt'
  | 'finishedAt'
>;

/** Port: studies and their trials, the state of record. Every transition is compare-and-set. */
export interface StudyRepository {
  /** Null when a study of that name exists. */
  insert(s: NewStudy): Promise<Study | null>;
  nameTaken(name: string): Promise<boolean>;
  findByIds(ids: readonly string[]): Promise<Study[]>;
  list(page: PageRequest, filter: { status?: StudyStatus }): Promise<Page<Study>>;
  /** Studies a pass must look at: RUNNING ones, and ended ones that still have open queue trials. */
  open(): Promise<Study[]>;
  /**
   * Takes the next trial number, only while the study is RUNNING, its trial and device-second
   * budgets are not spent and, for a trial of the queue (`queued`), fewer than `parallelism`
   * of its queue trials are open; null otherwise. One conditional UPDATE of the study row, so
   * any number of processes together never pass the budget or the parallelism.
   */
  reserveTrial(studyId: string, queued: boolean): Promise<number | null>;
  insertTrial(t: {
    studyId: string;
    number: number;
    params: Record<string, unknown>;
    asked: boolean;
    /** ASHA: 0; null under other pruners. */
    rung: number | null;
  }): Promise<Trial>;
  setTrialRun(trialId: string, runId: string): Promise<void>;
  /**
   * RUNNING or PAUSED → a final state; a queue trial that was RUNNING gives its slot back and
   * adds the device seconds its run used (`rungValue`: its value at the rung it reached). Null
   * when the trial had already ended (another pass settled it).
   */
  finishTrial(
    trialId: string,
    r: {
      state: TrialState;
      value: number | null;
      error: string | null;
      gpuSeconds: number;
      at: Date;
      rungValue?: number | null;
      /** ASHA: the rung's epochs, for a trial pruned while it waited there. */
      prunedAtEpoch?: number | null;
    },
  ): Promise<Trial | null>;
  /** A RUNNING trial's objective per epoch so far and the epochs its runs trained. */
  recordIntermediate(
    trialId: string,
    intermediate: IntermediateValue[],
    epochsTrained: number,
  ): Promise<void>;
  /**
   * The pruner's verdict on a RUNNING trial, once: the epoch and the value it had there. The
   * trial ends PRUNED when its run has stopped. Null when it is not RUNNING or already judged.
   */
  markPruned(trialId: string, at: IntermediateValue): Promise<Trial | null>;
  /**
   * ASHA: RUNNING → PAUSED at its rung with the value it reached; gives its slot back and adds
   * the device seconds its run used. Null when it was not RUNNING.
   */
  pauseTrial(trialId: string, r: { value: number; gpuSeconds: number }): Promise<Trial | null>;
  /**
   * ASHA: PAUSED → RUNNING at the next rung, its run to be submitted (the rung's run joins
   * its past ones), only while the study is RUNNING with fewer than `parallelism` queue trials
   * open: one statement, so concurrent passes never promote it twice or pass the parallelism.
   */
  promoteTrial(trialId: string): Promise<Trial | null>;
  /** Every trial of the study, by number. */
  trialsOf(studyId: string): Promise<Trial[]>;
  /** The trials of each study given, by number. */
  trialsOfStudies(studyIds: readonly string[]): Promise<Map<string, Trial[]>>;
  trialsByIds(ids: readonly string[]): Promise<Trial[]>;
  /** RUNNING → COMPLETED, CANCELLED or FAILED (with why); null when it had already ended. */
  finishStudy(
    id: string,
    status: StudyStatus,
    at: Date,
    error?: string | null,
  ): Promise<Study | null>;
}
