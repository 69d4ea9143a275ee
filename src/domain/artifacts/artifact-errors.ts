import {
  DomainError,
  ErrorCategory,
  InvalidInputError,
  NotFoundError,
} from '../shared/domain-error';
import { ArtifactErrorCode } from './artifact-store';

export class ArtifactNotFoundError extends NotFoundError {
  constructor(key: string) {
    super(ArtifactErrorCode.ARTIFACT_NOT_FOUND, `Artifact "${key}" does not exist`, { key });
  }
}

/** Stored bytes differ from what was recorded at write time: never retry, never use them. */
export class ArtifactIntegrityError extends DomainError {
  constructor(reason: ArtifactErrorCode, key: string, expected: string, actual: string) {
    super(
      ErrorCategory.INTERNAL,
      reason,
      `Artifact "${key}" is corrupt: expected ${expected}, read ${actual}`,
      {
        key,
        expected,
        actual,
      },
    );
  }
}

export class InvalidArtifactKeyError extends InvalidInputError {
  constructor(key: string) {
    super(ArtifactErrorCode.INVALID_ARTIFACT_KEY, `Invalid artifact key "${key}"`, { key });
  }
}
