import { type EventBus, Topics } from '../events/event-bus';
import { type Clock } from '../shared/clock';
import { type RunStatus, type TrainingRun } from './training-run';

export interface RunEvent {
  runId: string;
  status: RunStatus;
  at: string;
}

/** What `runProgress` streams: the run's state, and each epoch's metrics as it ends. */
export interface RunProgressEvent {
  runId: string;
  status: RunStatus;
  epoch: number;
  epochs: number | null;
  /** The epoch's metrics (for a status change, the latest summary). */
  metrics: Record<string, number>;
  at: string;
}

export const progressTopic = (runId: string) => `${Topics.runs}:${runId}`;

/**
 * The events of runs, one place for both sides of training (submission and the runners'
 * protocol): a state change on `runUpdates`, and the run's progress on `runProgress`.
 */
export class RunEvents {
  constructor(
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {}

  /** A run's new state: recorded in the caller's transaction (the outbox). */
  async changed(run: TrainingRun): Promise<void> {
    const at = this.clock.now().toISOString();
    const e: RunEvent = { runId: run.id, status: run.status, at };
    await this.events.publish(Topics.runs, e);
    const p: RunProgressEvent = {
      runId: run.id,
      status: run.status,
      epoch: run.epochsDone,
      epochs: run.epochsTotal,
      metrics: run.summary,
      at,
    };
    await this.events.publish(progressTopic(run.id), p);
  }

  /** One epoch's metrics of a running run. */
  async epoch(
    run: TrainingRun,
    e: { epoch: number; epochs?: number | null; metrics: Record<string, number> },
  ): Promise<void> {
    const event: RunProgressEvent = {
      runId: run.id,
      status: run.status,
      epoch: e.epoch,
      epochs: e.epochs ?? run.epochsTotal,
      metrics: e.metrics,
      at: this.clock.now().toISOString(),
    };
    await this.events.publish(progressTopic(run.id), event);
  }

  subscribeRuns() {
    return this.events.subscribe<RunEvent>(Topics.runs);
  }

  subscribeProgress(runId: string) {
    return this.events.subscribe<RunProgressEvent>(progressTopic(runId));
  }
}
