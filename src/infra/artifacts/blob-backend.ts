/**
 * The raw storage operations an artifact adapter must provide. Integrity (checksums,
 * sizes, the commit marker) is implemented once, in IntegrityArtifactStore, on top.
 */
export interface BlobBackend {
  readonly location: string;
  /** Atomic: the object is either absent or complete once this resolves. */
  write(key: string, body: AsyncIterable<Uint8Array>): Promise<void>;
  /** null when the object does not exist. */
  read(key: string): Promise<AsyncIterable<Uint8Array> | null>;
  remove(key: string): Promise<void>;
  /**
   * A hard link to the object at the local path `file`; false where the backend cannot make
   * one (no local files, another filesystem). Absent: never.
   */
  link?(key: string, file: string): Promise<boolean>;
  ping(): Promise<void>;
}
