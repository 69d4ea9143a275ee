import { InvalidInputError } from '../shared/domain-error';
import { TrainingErrorCode } from './training-run';

/** One declared hyperparameter: its type, bounds and default. */
export type ParamSpec =
  | { name: string; type: 'INT'; min: number; max: number; default: number; description: string }
  | {
      name: string;
      type: 'FLOAT';
      min: number;
      max: number;
      /** Whether `min` itself is allowed (a learning rate of 0 is not). */
      minExclusive?: boolean;
      default: number;
      description: string;
    }
  | {
      name: string;
      type: 'INT_LIST';
      min: number;
      max: number;
      minLength: number;
      maxLength: number;
      default: number[];
      description: string;
    };

export interface BuiltinTrainer {
  name: string;
  /** Bumped whenever the trainer's code changes what it computes. */
  version: string;
  description: string;
  params: ParamSpec[];
  /**
   * The hyperparameter that counts epochs. Resumed from a checkpoint of epoch k, the trainer
   * trains epochs k+1 … this value, so a run can continue an earlier one's training.
   */
  epochsParam: string;
}

const epochs = (d: number): ParamSpec => ({
  name: 'epochs',
  type: 'INT',
  min: 1,
  max: 10_000,
  default: d,
  description: 'Passes over the training rows.',
});
const seed: ParamSpec = {
  name: 'seed',
  type: 'INT',
  min: 0,
  max: 2 ** 31 - 1,
  default: 42,
  description: 'Seeds every random choice: the same seed gives the same model.',
};
const learningRate = (d: number): ParamSpec => ({
  name: 'learningRate',
  type: 'FLOAT',
  min: 0,
  minExclusive: true,
  max: 10,
  default: d,
  description: 'Step size.',
});
const batchSize: ParamSpec = {
  name: 'batchSize',
  type: 'INT',
  min: 1,
  max: 1 << 20,
  default: 1024,
  description: 'Rows per mini-batch.',
};
const checkpointEvery: ParamSpec = {
  name: 'checkpointEvery',
  type: 'INT',
  min: 1,
  max: 10_000,
  default: 1,
  description: 'Epochs between checkpoints.',
};

/** The trainers that ship with the platform; they run on CPU and export ONNX. */
export const BUILTIN_TRAINERS: readonly BuiltinTrainer[] = [
  {
    name: 'logistic_regression',
    version: '1',
    description: 'Logistic regression by mini-batch gradient descent with L2.',
    epochsParam: 'epochs',
    params: [
      epochs(20),
      learningRate(0.1),
      batchSize,
      { name: 'l2', type: 'FLOAT', min: 0, max: 100, default: 0, description: 'L2 penalty.' },
      checkpointEvery,
      seed,
    ],
  },
  {
    name: 'mlp',
    version: '1',
    description: 'Multi-layer perceptron (ReLU) trained with Adam on mini-batches.',
    epochsParam: 'epochs',
    params: [
      epochs(20),
      learningRate(0.001),
      batchSize,
      {
        name: 'hiddenUnits',
        type: 'INT_LIST',
        min: 1,
        max: 4096,
        minLength: 1,
        maxLength: 8,
        default: [32],
        description: 'Units per hidden layer.',
      },
      checkpointEvery,
      seed,
    ],
  },
  {
    name: 'gbdt',
    version: '1',
    description: 'Gradient-boosted decision trees (log loss), exported as ai.onnx.ml TreeEnsemble.',
    epochsParam: 'trees',
    params: [
      {
        name: 'trees',
        type: 'INT',
        min: 1,
        max: 5_000,
        default: 100,
        description: 'Boosting rounds.',
      },
      {
        name: 'maxDepth',
        type: 'INT',
        min: 1,
        max: 16,
        default: 4,
        description: 'Depth of each tree.',
      },
      learningRate(0.1),
      {
        name: 'minSamplesLeaf',
        type: 'INT',
        min: 1,
        max: 1_000_000,
        default: 20,
        description: 'Fewest rows in a leaf.',
      },
      {
        name: 'bins',
        type: 'INT',
        min: 2,
        max: 255,
        default: 64,
        description: 'Histogram bins per feature.',
      },
      checkpointEvery,
      seed,
    ],
  },
];

export function builtinTrainer(name: string): BuiltinTrainer | undefined {
  return BUILTIN_TRAINERS.find((t) => t.name === name);
}

/** Largest hyperparameter object a command trainer may receive, serialized. */
export const MAX_COMMAND_PARAMS_BYTES = 64 * 1024;

/**
 * Checks hyperparameters against the trainer's declared schema and fills in defaults.
 * Every problem is reported at once, each with its parameter.
 */
export function validateHyperparameters(
  trainer: BuiltinTrainer,
  given: Record<string, unknown>,
): Record<string, unknown> {
  const problems: { param: string; problem: string }[] = [];
  const out: Record<string, unknown> = {};
  const known = new Set(trainer.params.map((p) => p.name));
  for (const k of Object.keys(given))
    if (!known.has(k)) problems.push({ param: k, problem: 'is not a parameter of this trainer' });
  for (const p of trainer.params) {
    const v = given[p.name];
    if (v === undefined || v === null) {
      out[p.name] = p.default;
      continue;
    }
    const problem = checkParam(p, v);
    if (problem) problems.push({ param: p.name, problem });
    else out[p.name] = v;
  }
  if (problems.length) {
    throw new InvalidInputError(
      TrainingErrorCode.INVALID_HYPERPARAMETERS,
      `Invalid hyperparameters for ${trainer.name}: ${problems
        .map((x) => `${x.param} ${x.problem}`)
        .join('; ')}`,
      { problems },
    );
  }
  return out;
}

function checkParam(p: ParamSpec, v: unknown): string | null {
  const inRange = (x: number, exclusiveMin = false) =>
    (exclusiveMin ? x > p.min : x >= p.min) && x <= p.max;
  const range = (exclusiveMin = false) =>
    `must be ${exclusiveMin ? '>' : '>='} ${p.min} and <= ${p.max}`;
  switch (p.type) {
    case 'INT':
      if (typeof v !== 'number' || !Number.isInteger(v)) return 'must be an integer';
      return inRange(v) ? null : range();
    case 'FLOAT':
      if (typeof v !== 'number' || !Number.isFinite(v)) return 'must be a finite number';
      return inRange(v, p.minExclusive) ? null : range(p.minExclusive);
    case 'INT_LIST':
      if (!Array.isArray(v) || v.length < p.minLength || v.length > p.maxLength)
        return `must be a list of ${p.minLength} to ${p.maxLength} integers`;
      return v.every((x) => typeof x === 'number' && Number.isInteger(x) && inRange(x))
        ? null
        : `items ${range()}`;
  }
}
