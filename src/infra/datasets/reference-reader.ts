import { type DatasetSnapshot } from '../../domain/features/dataset';
import { type ReferenceReader } from '../../domain/monitoring/monitor';
import { type SnapshotProfile } from '../../domain/monitoring/retraining';
import { InvalidInputError } from '../../domain/shared/domain-error';
import { MonitoringErrorCode } from '../../domain/monitoring/monitor';
import { type ArtifactStore } from '../../domain/artifacts/artifact-store';
import { readTrainingTable } from './training-table';

/** A training snapshot's feature columns and profile, read from its (checksum-verified) Arrow file. */
export class SnapshotReferenceReader implements ReferenceReader {
  constructor(
    private readonly datasets: { byIds(ids: readonly string[]): Promise<DatasetSnapshot[]> },
    private readonly artifacts: ArtifactStore,
  ) {}

  async profile(datasetId: string): Promise<SnapshotProfile> {
    const { table } = readTrainingTable(await this.bytes(datasetId));
    let positives = 0;
    for (let i = 0; i < table.n; i++) positives += table.y[i];
    const missingShare: Record<string, number> = {};
    table.names.forEach((name, j) => {
      let missing = 0;
      for (let i = 0; i < table.n; i++) if (Number.isNaN(table.x[i * table.d + j])) missing++;
      missingShare[name] = table.n ? missing / table.n : 0;
    });
    return { rows: table.n, positives, missingShare };
  }

  async columns(datasetId: string, names: readonly string[]): Promise<Map<string, Float64Array>> {
    const { table } = readTrainingTable(await this.bytes(datasetId));
    const out = new Map<string, Float64Array>();
    for (const name of names) {
      const j = table.names.indexOf(name);
      if (j < 0)
        throw new InvalidInputError(
          MonitoringErrorCode.NO_REFERENCE,
          `Dataset snapshot ${datasetId} has no column ${name}`,
        );
      out.set(
        name,
        Float64Array.from({ length: table.n }, (_, i) => table.x[i * table.d + j]),
      );
    }
    return out;
  }

  private async bytes(datasetId: string): Promise<Uint8Array> {
    const [snapshot] = await this.datasets.byIds([datasetId]);
    if (!snapshot?.artifact)
      throw new InvalidInputError(
        MonitoringErrorCode.NO_REFERENCE,
        `Dataset snapshot ${datasetId} has no file to read`,
      );
    return this.artifacts.getBytes(snapshot.artifact.key, snapshot.artifact.sha256);
  }
}
