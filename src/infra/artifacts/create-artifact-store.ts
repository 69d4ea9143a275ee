import { type ArtifactStore } from '../../domain/artifacts/artifact-store';
import { type ArtifactStoreConfig } from '../config/config';
import { FsBlobBackend } from './fs-blob-backend';
import { IntegrityArtifactStore } from './integrity-artifact-store';
import { S3BlobBackend } from './s3-blob-backend';

export function createArtifactStore(cfg: ArtifactStoreConfig): ArtifactStore {
  const backend =
    cfg.kind === 'fs'
      ? new FsBlobBackend(cfg.root)
      : new S3BlobBackend({
          bucket: cfg.bucket,
          prefix: cfg.prefix,
          region: cfg.region,
          endpoint: cfg.endpoint,
          forcePathStyle: cfg.forcePathStyle,
        });
  return new IntegrityArtifactStore(backend);
}
