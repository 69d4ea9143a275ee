/**
 * Port: content-addressed-by-checksum blob storage for datasets, checkpoints and models.
 * Writes are atomic (a reader sees the whole artifact or nothing) and record SHA-256 and
 * size; reads verify both and fail with ArtifactIntegrityError on any mismatch. Bodies
 * are async iterables of bytes so multi-gigabyte artifacts never sit in memory whole.
 */
export interface ArtifactRef {
  key: string;
  sha256: string;
  size: number;
}

export type ByteSource = AsyncIterable<Uint8Array> | Uint8Array;

export interface ArtifactStore {
  /** Human-readable location, e.g. `file:///…` or `s3://bucket/prefix`. */
  readonly location: string;
  put(key: string, body: ByteSource): Promise<ArtifactRef>;
  /**
   * Streams the artifact. The stream fails at its end, before completing, if the bytes do
   * not match the recorded (or `expectedSha256`) checksum: consumers must treat the data
   * as unusable until the stream has completed without error.
   */
  get(key: string, expectedSha256?: string): Promise<AsyncIterable<Uint8Array>>;
  /** Convenience for small artifacts; verified like `get`. */
  getBytes(key: string, expectedSha256?: string): Promise<Uint8Array>;
  /**
   * A copy of the artifact at the local path `file` (which must not exist), verified like
   * `get`: when the call fails, nothing is left at `file`. A store whose objects are files on
   * the same filesystem gives a hard link, checked by one read, instead of writing the bytes
   * again; the copy then outlives a later `delete` all the same.
   */
  saveTo(key: string, file: string, expectedSha256?: string): Promise<void>;
  stat(key: string): Promise<ArtifactRef | null>;
  delete(key: string): Promise<void>;
  /** Cheap check that the store is reachable and writable, for readiness. */
  ping(): Promise<void>;
}

export enum ArtifactErrorCode {
  ARTIFACT_NOT_FOUND = 'ARTIFACT_NOT_FOUND',
  ARTIFACT_CHECKSUM_MISMATCH = 'ARTIFACT_CHECKSUM_MISMATCH',
  ARTIFACT_SIZE_MISMATCH = 'ARTIFACT_SIZE_MISMATCH',
  INVALID_ARTIFACT_KEY = 'INVALID_ARTIFACT_KEY',
}

const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._=-]*(\/[A-Za-z0-9][A-Za-z0-9._=-]*)*$/;

/** Keys are relative, slash-separated, with no `..`, so no adapter can be steered outside its root. */
export function isValidArtifactKey(key: string): boolean {
  return (
    key.length <= 512 &&
    KEY_RE.test(key) &&
    !key.split('/').some((s) => s === '..' || s.endsWith('.meta'))
  );
}
