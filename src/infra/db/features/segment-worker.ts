import { parentPort, workerData } from 'node:worker_threads';
import { type FeatureViewSchema } from '../../../domain/features/feature-definition';
import { serveSegmentWorker } from './segment-builder';

/** The thread `SegmentBuilder` starts: see there. */
if (!parentPort) throw new Error('segment-worker runs as a worker thread');
serveSegmentWorker((workerData as { schema: FeatureViewSchema }).schema, parentPort);
