import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type AddressInfo } from 'node:net';
// s3rver ships no types; this is the little of its API the tests use.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};

export interface TestS3 {
  endpoint: string;
  bucket: string;
  stop(): Promise<void>;
}

/** A real S3-compatible server (s3rver) on a free loopback port, one bucket, credentials set. */
export async function startS3(bucket = 'aether-test'): Promise<TestS3> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-s3-'));
  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: dir,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  const addr = await server.run();
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    bucket,
    stop: async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
