import { type DatasetSnapshot } from '../../domain/features/dataset';
import { type ReferenceReader } from '../../domain/monitoring/monitor';
import { InvalidInputError } from '../../domain/shared/domain-error';
import { MonitoringErrorCode } from '../../domain/monitoring/monitor';
import { type ArtifactStore } from '../../domain/artifacts/artifact-store';
import { readTrainingTable } from './training-table';

/** A training snapshot's feature columns, read from its (checksum-verified) Arrow file. */
export class SnapshotReferenceReader implements ReferenceReader {
  constructor(
    private readonly datasets: { byIds(ids: readonly string[]): Promise<DatasetSnapshot[]> },
    private readonly artifacts: ArtifactStore,
  ) {}

  async columns(datasetId: string, names: readonly string[]): Promise<Map<string, Float64Array>> {
    const [snapshot] = await this.datasets.byIds([datasetId]);
    if (!snapshot?.artifact)
      throw new InvalidInputError(
        MonitoringErrorCode.NO_REFERENCE,
        `Dataset snapshot ${datasetId} has no file to take a reference from`,
      );
    const { table } = readTrainingTable(
      await this.artifacts.getBytes(snapshot.artifact.key, snapshot.artifact.sha256),
    );
    const out = new Map<string, Float64Array>();
    for (const name of names) {
      const j = table.names.indexOf(name);
      if (j < 0)
        throw new InvalidInputError(
          MonitoringErrorCode.NO_REFERENCE,
          `${snapshot.name} has no column ${name}`,
        );
      out.set(
        name,
        Float64Array.from({ length: table.n }, (_, i) => table.x[i * table.d + j]),
      );
    }
    return out;
  }
}
