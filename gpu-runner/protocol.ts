/**
 * The trainer protocol (docs/trainer-protocol.md): how a gpu-runner and a trainer process
 * talk. A trainer reads its inputs from the environment and writes one JSON object per
 * line on stdout; anything else it prints is kept as log.
 */
export type TrainerEvent =
  | {
      type: 'epoch';
      epoch: number;
      epochs?: number;
      /** Per-epoch metrics, name → value. */
      metrics: Record<string, number>;
    }
  | {
      /** Opt-in per-step metrics; the runner sends them in batches. */
      type: 'step';
      epoch: number;
      step: number;
      metrics: Record<string, number>;
    }
  | {
      /** Final metrics that are not per epoch (e.g. onnx_max_abs_diff). */
      type: 'metrics';
      metrics: Record<string, number>;
    }
  | {
      /** A complete checkpoint file (written whole, then renamed into place). */
      type: 'checkpoint';
      epoch: number;
      path: string;
    }
  | {
      type: 'model';
      path: string;
      format: 'onnx';
      features?: string[];
    };

/** What the runner gives a trainer: exactly the variables docs/trainer-protocol.md lists. */
export interface TrainerInputs {
  runId: string;
  trainer: string;
  hyperparameters: Record<string, unknown>;
  datasetPath: string;
  outputDir: string;
  checkpointDir: string;
  resumeCheckpoint: string | null;
  gpus: number[];
}

export function protocolEnvironment(i: TrainerInputs): Record<string, string> {
  return {
    AETHER_RUN_ID: i.runId,
    AETHER_TRAINER: i.trainer,
    AETHER_HYPERPARAMETERS: JSON.stringify(i.hyperparameters),
    AETHER_DATASET_PATH: i.datasetPath,
    AETHER_OUTPUT_DIR: i.outputDir,
    AETHER_CHECKPOINT_DIR: i.checkpointDir,
    ...(i.resumeCheckpoint ? { AETHER_RESUME_CHECKPOINT: i.resumeCheckpoint } : {}),
    CUDA_VISIBLE_DEVICES: i.gpus.join(','),
  };
}

/** Exit codes: 0 done; this one "failed, but another attempt may succeed"; any other: failed for good. */
export const EXIT_RETRYABLE = 75;

export function parseTrainerEvent(line: string): TrainerEvent | null {
  if (!line.startsWith('{')) return null;
  try {
    const e = JSON.parse(line) as Partial<TrainerEvent>;
    switch (e.type) {
      case 'epoch':
      case 'step':
      case 'metrics':
      case 'checkpoint':
      case 'model':
        return e as TrainerEvent;
      default:
        return null;
    }
  } catch {
    return null;
  }
}
