import fs from 'node:fs';
import path from 'node:path';

/** One US domestic flight (BTS data via the vega-datasets package). Times are epoch ms. */
export interface Flight {
  id: string;
  /** Scheduled departure. */
  scheduled: number;
  /** Actual departure = scheduled + delay: when the delay became a known fact. */
  departed: number;
  delayMinutes: number;
  distanceMiles: number;
  origin: string;
  destination: string;
}

export function flightsFile(): string {
  // The package exports only its JS entry; its data files sit beside it.
  return path.join(
    path.dirname(require.resolve('vega-datasets')),
    '..',
    'data',
    'flights-3m.parquet',
  );
}

/** Reads flights [start, end) of flights-3m.parquet (3 million rows, 2001, ordered by scheduled time). */
export async function readFlights(start: number, end: number): Promise<Flight[]> {
  // hyparquet is ESM-only: load it with a dynamic import from this CommonJS build.
  const { parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buf = fs.readFileSync(flightsFile());
  const rows = (await parquetReadObjects({
    file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
    rowStart: start,
    rowEnd: end,
    compressors,
  })) as { date: Date; delay: bigint; distance: bigint; origin: string; destination: string }[];
  return rows.map((r, i) => {
    const scheduled = r.date.getTime();
    const delayMinutes = Number(r.delay);
    return {
      id: `f${start + i}`,
      scheduled,
      departed: scheduled + delayMinutes * 60_000,
      delayMinutes,
      distanceMiles: Number(r.distance),
      origin: r.origin,
      destination: r.destination,
    };
  });
}
