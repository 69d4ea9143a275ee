import { Foundation1764000000000 } from './1764000000000-foundation';
import { FeatureStore1764100000000 } from './1764100000000-feature-store';
import { OfflineSegments1764200000000 } from './1764200000000-offline-segments';
import { Training1764300000000 } from './1764300000000-training';
import { ModelRegistry1764400000000 } from './1764400000000-model-registry';
import { Serving1764500000000 } from './1764500000000-serving';
import { Autoscaling1764600000000 } from './1764600000000-autoscaling';
import { Monitoring1764700000000 } from './1764700000000-monitoring';
import { Security1764800000000 } from './1764800000000-security';
import { Fleet1764900000000 } from './1764900000000-fleet';
import { FeatureVersions1764960000000 } from './1764960000000-feature-versions';
import { HyperparameterSearch1765000000000 } from './1765000000000-hyperparameter-search';
import { StudyLineage1765040000000 } from './1765040000000-study-lineage';
import { HpoPruning1765050000000 } from './1765050000000-hpo-pruning';
import { PreviousVersions1765060000000 } from './1765060000000-previous-versions';
import { OpenTables1765070000000 } from './1765070000000-open-tables';
import { DatasetEngine1765080000000 } from './1765080000000-dataset-engine';
import { SegmentRuns1765090000000 } from './1765090000000-segment-runs';
import { QuarantineOnce1765100000000 } from './1765100000000-quarantine-once';
import { StudyError1765110000000 } from './1765110000000-study-error';
import { PredictionInputs1765120000000 } from './1765120000000-prediction-inputs';
import { PredictionLogStatementChecks1765130000000 } from './1765130000000-prediction-log-statement-checks';

/** Every migration, in order. Listed explicitly so compiled and test builds agree. */
export const migrations = [
  Foundation1764000000000,
  FeatureStore1764100000000,
  OfflineSegments1764200000000,
  Training1764300000000,
  ModelRegistry1764400000000,
  Serving1764500000000,
  Autoscaling1764600000000,
  Monitoring1764700000000,
  Security1764800000000,
  Fleet1764900000000,
  FeatureVersions1764960000000,
  HyperparameterSearch1765000000000,
  StudyLineage1765040000000,
  HpoPruning1765050000000,
  PreviousVersions1765060000000,
  OpenTables1765070000000,
  DatasetEngine1765080000000,
  SegmentRuns1765090000000,
  QuarantineOnce1765100000000,
  StudyError1765110000000,
  PredictionInputs1765120000000,
  PredictionLogStatementChecks1765130000000,
];
