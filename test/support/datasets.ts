import { tableFromIPC } from 'apache-arrow';
import { type ArtifactStore } from '../../src/domain/artifacts/artifact-store';

/** Reads a snapshot file back into plain rows, the way a training script would. */
export async function readSnapshot(
  artifacts: ArtifactStore,
  key: string,
): Promise<Record<string, unknown>[]> {
  const table = tableFromIPC(await artifacts.getBytes(key));
  return table.toArray().map((row) => {
    const o = row.toJSON() as Record<string, unknown>;
    for (const [k, v] of Object.entries(o))
      if (v && typeof v === 'object' && 'toArray' in v)
        o[k] = Array.from((v as { toArray(): ArrayLike<number> }).toArray());
    return o;
  });
}
