import { createHash, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ArtifactIntegrityError,
  ArtifactNotFoundError,
  InvalidArtifactKeyError,
} from '../../domain/artifacts/artifact-errors';
import {
  ArtifactErrorCode,
  type ArtifactRef,
  type ArtifactStore,
  type ByteSource,
  isValidArtifactKey,
} from '../../domain/artifacts/artifact-store';
import { type BlobBackend } from './blob-backend';

interface Meta {
  sha256: string;
  size: number;
  writtenAt: string;
}

/**
 * Writes the bytes, then a `<key>.meta` record of their SHA-256 and size. The meta record
 * is the commit marker: an artifact without one does not exist, so a crash mid-write
 * leaves nothing a reader could mistake for a complete artifact.
 */
export class IntegrityArtifactStore implements ArtifactStore {
  constructor(private readonly backend: BlobBackend) {}

  get location(): string {
    return this.backend.location;
  }

  async put(key: string, body: ByteSource): Promise<ArtifactRef> {
    checkKey(key);
    const hash = createHash('sha256');
    let size = 0;
    async function* hashing(): AsyncIterable<Uint8Array> {
      for await (const chunk of toIterable(body)) {
        hash.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    }
    await this.backend.write(key, hashing());
    const meta: Meta = { sha256: hash.digest('hex'), size, writtenAt: new Date().toISOString() };
    await this.backend.write(metaKey(key), toIterable(Buffer.from(JSON.stringify(meta))));
    return { key, sha256: meta.sha256, size };
  }

  async stat(key: string): Promise<ArtifactRef | null> {
    checkKey(key);
    const meta = await this.readMeta(key);
    return meta ? { key, sha256: meta.sha256, size: meta.size } : null;
  }

  async get(key: string, expectedSha256?: string): Promise<AsyncIterable<Uint8Array>> {
    const { meta, body } = await this.open(key, expectedSha256);
    return verifying(key, body, meta);
  }

  /**
   * Reads into one buffer of the recorded size and hashes it with WebCrypto, which runs on
   * the thread pool: a caller reading several artifacts keeps its own thread for other work.
   */
  async getBytes(key: string, expectedSha256?: string): Promise<Uint8Array> {
    const { meta, body } = await this.open(key, expectedSha256);
    const bytes = Buffer.allocUnsafe(meta.size);
    let size = 0;
    for await (const chunk of body) {
      if (size + chunk.byteLength > meta.size) throw sizeMismatch(key, meta, null);
      bytes.set(chunk, size);
      size += chunk.byteLength;
    }
    if (size !== meta.size) throw sizeMismatch(key, meta, size);
    checkDigest(key, meta, Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)));
    return bytes;
  }

  async saveTo(key: string, file: string, expectedSha256?: string): Promise<void> {
    const meta = await this.meta(key, expectedSha256);
    try {
      if (await this.link(key, file)) {
        // The link is the store's own bytes: read once, to check them.
        for await (const chunk of verifying(key, fs.createReadStream(file, CHUNK), meta))
          void chunk;
        return;
      }
      const body = await this.backend.read(key);
      if (!body) throw new ArtifactNotFoundError(key);
      await pipeline(Readable.from(verifying(key, body, meta)), fs.createWriteStream(file));
    } catch (e) {
      await fsp.rm(file, { force: true });
      throw e;
    }
  }

  /** A hard link where the backend makes one; false where it cannot. */
  private async link(key: string, file: string): Promise<boolean> {
    try {
      return (await this.backend.link?.(key, file)) ?? false;
    } catch (e) {
      // Removed since its meta record was read: as if it had not been found.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ArtifactNotFoundError(key);
      throw e;
    }
  }

  private async open(
    key: string,
    expectedSha256: string | undefined,
  ): Promise<{ meta: Meta; body: AsyncIterable<Uint8Array> }> {
    const meta = await this.meta(key, expectedSha256);
    const body = await this.backend.read(key);
    if (!body) throw new ArtifactNotFoundError(key);
    return { meta, body };
  }

  /** The artifact's meta record, refused when missing or not of the checksum expected. */
  private async meta(key: string, expectedSha256: string | undefined): Promise<Meta> {
    checkKey(key);
    const meta = await this.readMeta(key);
    if (!meta) throw new ArtifactNotFoundError(key);
    if (expectedSha256 && expectedSha256 !== meta.sha256) {
      throw new ArtifactIntegrityError(
        ArtifactErrorCode.ARTIFACT_CHECKSUM_MISMATCH,
        key,
        `sha256 ${expectedSha256}`,
        `recorded sha256 ${meta.sha256}`,
      );
    }
    return meta;
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    // Marker first: from this moment the artifact is gone for readers.
    await this.backend.remove(metaKey(key));
    await this.backend.remove(key);
  }

  ping(): Promise<void> {
    return this.backend.ping();
  }

  private async readMeta(key: string): Promise<Meta | null> {
    const body = await this.backend.read(metaKey(key));
    if (!body) return null;
    const chunks: Uint8Array[] = [];
    for await (const c of body) chunks.push(c);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Meta;
  }
}

const CHUNK = { highWaterMark: 1 << 20 };

async function* verifying(
  key: string,
  body: AsyncIterable<Uint8Array>,
  meta: Meta,
): AsyncIterable<Uint8Array> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > meta.size) throw sizeMismatch(key, meta, null);
    hash.update(chunk);
    yield chunk;
  }
  if (size !== meta.size) throw sizeMismatch(key, meta, size);
  checkDigest(key, meta, hash.digest());
}

/** `actual` null: more bytes than recorded (found before reading them all). */
function sizeMismatch(key: string, meta: Meta, actual: number | null): ArtifactIntegrityError {
  return new ArtifactIntegrityError(
    ArtifactErrorCode.ARTIFACT_SIZE_MISMATCH,
    key,
    `${meta.size} bytes`,
    actual === null ? `more than ${meta.size} bytes` : `${actual} bytes`,
  );
}

function checkDigest(key: string, meta: Meta, digest: Buffer): void {
  const actual = digest.toString('hex');
  if (actual !== meta.sha256) {
    throw new ArtifactIntegrityError(
      ArtifactErrorCode.ARTIFACT_CHECKSUM_MISMATCH,
      key,
      `sha256 ${meta.sha256}`,
      `sha256 ${actual}`,
    );
  }
}

function metaKey(key: string): string {
  return `${key}.meta`;
}

function checkKey(key: string): void {
  if (!isValidArtifactKey(key)) throw new InvalidArtifactKeyError(key);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function toIterable(body: ByteSource): AsyncIterable<Uint8Array> {
  return body instanceof Uint8Array ? once(body) : body;
}
