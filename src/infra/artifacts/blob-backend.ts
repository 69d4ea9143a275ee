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
  ping(): Promise<void>;
}
