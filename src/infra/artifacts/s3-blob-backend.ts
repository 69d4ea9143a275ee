import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  NoSuchKey,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { type BlobBackend } from './blob-backend';

export interface S3BackendOptions {
  bucket: string;
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  /** Multipart part size; memory use is about partSize × queueSize. */
  partSizeBytes?: number;
}

/** S3 objects appear only when an upload completes, so writes are atomic by nature. */
export class S3BlobBackend implements BlobBackend {
  readonly location: string;
  private readonly client: S3Client;

  constructor(private readonly opts: S3BackendOptions) {
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
    });
    this.location = `s3://${opts.bucket}${opts.prefix ? `/${opts.prefix}` : ''}`;
  }

  async write(key: string, body: AsyncIterable<Uint8Array>): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.opts.bucket, Key: this.key(key), Body: Readable.from(body) },
      partSize: this.opts.partSizeBytes ?? 8 * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async read(key: string): Promise<AsyncIterable<Uint8Array> | null> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }),
      );
      return res.Body as Readable;
    } catch (e) {
      if (
        e instanceof NoSuchKey ||
        (e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404)
      )
        return null;
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    await this.client.send(
      new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }),
    );
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
  }

  close(): void {
    this.client.destroy();
  }

  private key(key: string): string {
    return this.opts.prefix ? `${this.opts.prefix}/${key}` : key;
  }
}
