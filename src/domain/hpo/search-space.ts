import { DomainError, InvalidInputError } from '../shared/domain-error';
import { type BuiltinTrainer, validateHyperparameters } from '../training/trainers';
import {
  HpoErrorCode,
  MAX_CHOICES,
  MAX_SPACE_PARAMS,
  ParamKind,
  type SearchParam,
  type SearchSpace,
} from './study';

/** The index of a categorical dimension's choice equal (as JSON) to `v`; -1 when none is. */
export function choiceIndex(choices: readonly unknown[], v: unknown): number {
  const key = JSON.stringify(v);
  return choices.findIndex((c) => JSON.stringify(c) === key);
}

/** A search-space dimension as a client gives it. */
export interface SearchParamInput {
  name: string;
  kind: ParamKind;
  low?: number | null;
  high?: number | null;
  log?: boolean | null;
  choices?: unknown[] | null;
}

const PARAM_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/;

interface Problem {
  param: string;
  problem: string;
}

/**
 * Checks a search space on its own and, for a built-in trainer, against the hyperparameters it
 * declares: every name declared, every kind fitting the declared type, every value the space
 * can produce (its bounds, each choice) accepted by the trainer's own validation. Every
 * problem is reported at once, each naming its parameter.
 */
export function validateSearchSpace(
  input: readonly SearchParamInput[],
  trainer: BuiltinTrainer | null,
  fixed: Record<string, unknown>,
): SearchSpace {
  const problems: Problem[] = [];
  const out: SearchParam[] = [];
  if (input.length === 0 || input.length > MAX_SPACE_PARAMS)
    throw spaceError([
      { param: '*', problem: `the space must have 1 to ${MAX_SPACE_PARAMS} parameters` },
    ]);
  const seen = new Set<string>();
  for (const p of input) {
    const problem = shapeProblem(p);
    if (problem) {
      problems.push({ param: p.name, problem });
      continue;
    }
    if (seen.has(p.name)) {
      problems.push({ param: p.name, problem: 'appears twice in the space' });
      continue;
    }
    seen.add(p.name);
    if (p.name in fixed) {
      problems.push({ param: p.name, problem: 'is both searched and fixed' });
      continue;
    }
    const param = normalize(p);
    const against = trainer ? trainerProblem(param, trainer) : null;
    if (against) problems.push({ param: p.name, problem: against });
    else out.push(param);
  }
  if (problems.length) throw spaceError(problems);
  return out;
}

function spaceError(problems: Problem[]): InvalidInputError {
  return new InvalidInputError(
    HpoErrorCode.INVALID_SEARCH_SPACE,
    `Invalid search space: ${problems.map((p) => `${p.param} ${p.problem}`).join('; ')}`,
    { problems, param: problems[0].param },
  );
}

function shapeProblem(p: SearchParamInput): string | null {
  if (!PARAM_NAME_RE.test(p.name)) return 'is not a parameter name';
  const numeric = p.kind === ParamKind.FLOAT || p.kind === ParamKind.INT;
  if (numeric) {
    if (p.choices != null) return `is ${p.kind}: give low and high, not choices`;
    const { low, high } = p;
    if (low == null || high == null || !Number.isFinite(low) || !Number.isFinite(high))
      return `is ${p.kind}: low and high must be finite numbers`;
    if (p.kind === ParamKind.INT && (!Number.isInteger(low) || !Number.isInteger(high)))
      return 'is INT: low and high must be integers';
    if (!(low < high)) return 'low must be less than high';
    if (p.log && low <= 0) return 'has a log scale: low must be greater than 0';
    return null;
  }
  if (p.low != null || p.high != null || p.log)
    return 'is CATEGORICAL: give choices, not low, high or log';
  if (!Array.isArray(p.choices) || p.choices.length === 0 || p.choices.length > MAX_CHOICES)
    return `is CATEGORICAL: give 1 to ${MAX_CHOICES} choices`;
  const keys = p.choices.map((c) => JSON.stringify(c));
  if (keys.some((k) => k === undefined || k === 'null')) return 'choices must be JSON values';
  if (new Set(keys).size !== keys.length) return 'has a choice twice';
  return null;
}

function normalize(p: SearchParamInput): SearchParam {
  switch (p.kind) {
    case ParamKind.FLOAT:
    case ParamKind.INT:
      return {
        name: p.name,
        kind: p.kind,
        low: p.low as number,
        high: p.high as number,
        log: p.log === true,
      };
    case ParamKind.CATEGORICAL:
      return { name: p.name, kind: p.kind, choices: [...(p.choices as unknown[])] };
  }
}

/** What the trainer declares against this dimension, or null when it fits. */
function trainerProblem(p: SearchParam, trainer: BuiltinTrainer): string | null {
  const declared = trainer.params.find((d) => d.name === p.name);
  if (!declared) return `is not a hyperparameter of ${trainer.name}`;
  if (declared.type === 'INT' && p.kind === ParamKind.FLOAT)
    return `is an integer hyperparameter of ${trainer.name}: search it as INT or CATEGORICAL`;
  if (declared.type === 'INT_LIST' && p.kind !== ParamKind.CATEGORICAL)
    return `is a list of integers for ${trainer.name}: search it as CATEGORICAL`;
  const values = p.kind === ParamKind.CATEGORICAL ? p.choices : [p.low, p.high];
  for (const v of values) {
    try {
      validateHyperparameters(trainer, { [p.name]: v });
    } catch (e) {
      if (!(e instanceof DomainError)) throw e;
      const found = (e.details?.problems as Problem[] | undefined)?.find((x) => x.param === p.name);
      return `value ${JSON.stringify(v)} ${found?.problem ?? 'is not accepted by the trainer'}`;
    }
  }
  return null;
}
