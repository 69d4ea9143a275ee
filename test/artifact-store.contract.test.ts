import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  ArtifactIntegrityError,
  ArtifactNotFoundError,
  InvalidArtifactKeyError,
} from '../src/domain/artifacts/artifact-errors';
import { type ArtifactStore } from '../src/domain/artifacts/artifact-store';
import { createArtifactStore } from '../src/infra/artifacts/create-artifact-store';
import { startS3, type TestS3 } from './support/s3-server';

/**
 * One contract, two adapters. `corrupt` tampers with the stored bytes behind the store's
 * back, the way a bad disk or a stray writer would.
 */
interface Subject {
  store: ArtifactStore;
  /** Where a filesystem store keeps its objects. */
  root?: string;
  corrupt(key: string, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

const fsSubject = async (): Promise<Subject> => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-artifacts-'));
  return {
    store: createArtifactStore({ kind: 'fs', root }),
    root,
    corrupt: async (key, bytes) => fs.writeFileSync(path.join(root, key), bytes),
    close: async () => fs.rmSync(root, { recursive: true, force: true }),
  };
};

const s3Subject = async (): Promise<Subject> => {
  const s3: TestS3 = await startS3();
  const prefix = 'contract';
  const raw = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true });
  return {
    store: createArtifactStore({
      kind: 's3',
      bucket: s3.bucket,
      prefix,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
    }),
    corrupt: async (key, bytes) => {
      await raw.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${key}`, Body: bytes }),
      );
    },
    close: async () => {
      raw.destroy();
      await s3.stop();
    },
  };
};

async function* chunks(total: number, chunkSize: number, seed: number): AsyncIterable<Uint8Array> {
  let sent = 0;
  let i = seed;
  while (sent < total) {
    const n = Math.min(chunkSize, total - sent);
    const c = Buffer.alloc(n, i++ % 251);
    sent += n;
    yield c;
  }
}

async function drain(
  it: AsyncIterable<Uint8Array>,
): Promise<{ sha256: string; size: number; chunks: number }> {
  const h = createHash('sha256');
  let size = 0;
  let n = 0;
  for await (const c of it) {
    h.update(c);
    size += c.byteLength;
    n++;
  }
  return { sha256: h.digest('hex'), size, chunks: n };
}

describe.each([
  ['filesystem', fsSubject],
  ['s3 (s3rver)', s3Subject],
])('ArtifactStore contract: %s', (_name, make) => {
  let s: Subject;
  beforeAll(async () => {
    s = await make();
  });
  afterAll(async () => {
    await s.close();
  });

  it('records SHA-256 and size on write and returns the same bytes', async () => {
    const bytes = randomBytes(100_000);
    const ref = await s.store.put('models/m1/model.onnx', bytes);
    expect(ref).toEqual({
      key: 'models/m1/model.onnx',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: 100_000,
    });
    expect(await s.store.stat('models/m1/model.onnx')).toEqual(ref);
    expect(
      Buffer.from(await s.store.getBytes('models/m1/model.onnx', ref.sha256)).equals(bytes),
    ).toBe(true);
  });

  it('streams a large artifact in chunks both ways', async () => {
    const total = 24 * 1024 * 1024;
    const expected = await drain(chunks(total, 1 << 20, 7));
    const ref = await s.store.put('datasets/big.arrow', chunks(total, 1 << 20, 7));
    expect(ref.size).toBe(total);
    expect(ref.sha256).toBe(expected.sha256);
    const read = await drain(await s.store.get('datasets/big.arrow'));
    expect(read.sha256).toBe(expected.sha256);
    expect(read.chunks).toBeGreaterThan(1);
  });

  it('fails a read whose bytes were changed after the write', async () => {
    const bytes = Buffer.from('the real model weights');
    await s.store.put('models/m2/model.onnx', bytes);
    await s.corrupt('models/m2/model.onnx', Buffer.from('the real model weightZ'));
    await expect(s.store.getBytes('models/m2/model.onnx')).rejects.toThrow(ArtifactIntegrityError);
    await expect(s.store.getBytes('models/m2/model.onnx')).rejects.toMatchObject({
      reason: 'ARTIFACT_CHECKSUM_MISMATCH',
    });
  });

  it('fails a read whose size changed', async () => {
    await s.store.put('models/m3/model.onnx', Buffer.from('0123456789'));
    await s.corrupt('models/m3/model.onnx', Buffer.from('0123'));
    await expect(s.store.getBytes('models/m3/model.onnx')).rejects.toMatchObject({
      reason: 'ARTIFACT_SIZE_MISMATCH',
    });
  });

  it('refuses a read that expects a different checksum than recorded', async () => {
    await s.store.put('models/m4/model.onnx', Buffer.from('abc'));
    await expect(s.store.get('models/m4/model.onnx', 'f'.repeat(64))).rejects.toThrow(
      ArtifactIntegrityError,
    );
  });

  it('leaves nothing behind when the source fails mid-write', async () => {
    async function* failing(): AsyncIterable<Uint8Array> {
      yield Buffer.alloc(1024, 1);
      throw new Error('producer crashed');
    }
    await expect(s.store.put('checkpoints/c1.bin', failing())).rejects.toThrow('producer crashed');
    expect(await s.store.stat('checkpoints/c1.bin')).toBeNull();
    await expect(s.store.get('checkpoints/c1.bin')).rejects.toThrow(ArtifactNotFoundError);
  });

  it('answers NOT_FOUND for a missing artifact and deletes cleanly', async () => {
    await expect(s.store.get('nope/missing.bin')).rejects.toMatchObject({ category: 'NOT_FOUND' });
    await s.store.put('tmp/x.bin', Buffer.from('x'));
    await s.store.delete('tmp/x.bin');
    expect(await s.store.stat('tmp/x.bin')).toBeNull();
  });

  it.each(['../escape', '/abs', 'a//b', 'a/../b', 'x.meta', ''])(
    'rejects the key %p',
    async (key) => {
      await expect(s.store.put(key, Buffer.from('x'))).rejects.toThrow(InvalidArtifactKeyError);
    },
  );

  it('saves a verified copy to a local file that outlives the artifact', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-saveto-'));
    try {
      const bytes = randomBytes(3 * 1024 * 1024 + 5);
      const ref = await s.store.put('tables/t1.parquet', bytes);
      const file = path.join(dir, 't1.parquet');
      await s.store.saveTo('tables/t1.parquet', file, ref.sha256);
      await s.store.delete('tables/t1.parquet');
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);

      await s.store.put('tables/t2.parquet', Buffer.from('the real rows'));
      await s.corrupt('tables/t2.parquet', Buffer.from('the real rowZ'));
      const bad = path.join(dir, 't2.parquet');
      await expect(s.store.saveTo('tables/t2.parquet', bad)).rejects.toMatchObject({
        reason: 'ARTIFACT_CHECKSUM_MISMATCH',
      });
      expect(fs.existsSync(bad)).toBe(false);
      await expect(s.store.saveTo('tables/none.parquet', bad)).rejects.toThrow(
        ArtifactNotFoundError,
      );
      expect(fs.existsSync(bad)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pings', async () => {
    await expect(s.store.ping()).resolves.toBeUndefined();
  });
});

it('a filesystem store saves by hard link on the same filesystem: nothing written twice', async () => {
  const s = await fsSubject();
  try {
    await s.store.put('tables/t.parquet', randomBytes(1024));
    const file = path.join(s.root as string, 'copy.parquet');
    await s.store.saveTo('tables/t.parquet', file);
    expect(fs.statSync(file).ino).toBe(
      fs.statSync(path.join(s.root as string, 'tables/t.parquet')).ino,
    );
  } finally {
    await s.close();
  }
});
