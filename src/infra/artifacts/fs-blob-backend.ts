import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { type BlobBackend } from './blob-backend';

/** Local files: write to a temporary sibling, fsync, then rename into place. */
export class FsBlobBackend implements BlobBackend {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = pathToFileURL(root).href;
  }

  async write(key: string, body: AsyncIterable<Uint8Array>): Promise<void> {
    const target = this.path(key);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(
      path.dirname(target),
      `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    try {
      await pipeline(Readable.from(body), fs.createWriteStream(tmp));
      const fh = await fsp.open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, target);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  async read(key: string): Promise<AsyncIterable<Uint8Array> | null> {
    const p = this.path(key);
    try {
      await fsp.access(p, fs.constants.R_OK);
    } catch {
      return null;
    }
    return fs.createReadStream(p, { highWaterMark: 1 << 20 });
  }

  async link(key: string, file: string): Promise<boolean> {
    try {
      await fsp.link(this.path(key), file);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another filesystem, or one without hard links: the caller copies instead.
      if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP' || code === 'EMLINK')
        return false;
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    await fsp.rm(this.path(key), { force: true });
  }

  async ping(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true });
    await fsp.access(this.root, fs.constants.W_OK);
  }

  private path(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }
}
