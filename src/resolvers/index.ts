import { ApiKeyResolver } from './api-key.resolver';
import { DeadLetterResolver } from './dead-letter.resolver';
import { FeatureViewResolver, FeatureViewVersionResolver } from './feature.resolver';
import { NodeResolver } from './node.resolver';
import { RunnerResolver } from './runner.resolver';
import { TrainingResolver } from './training.resolver';
import { StudyResolver, TrialResolver } from './hpo.resolver';
import { StudyResultsResolver } from './study-results.resolver';
import { DeploymentResolver, VersionTrafficResolver } from './serving.resolver';
import {
  AlertResolver,
  MonitorReportResolver,
  MonitorResolver,
  RetrainingResolver,
} from './monitoring.resolver';
import {
  LineageNodeResolver,
  ModelResolver,
  ModelVersionResolver,
  RunModelResolver,
} from './registry.resolver';

export const resolvers = [
  NodeResolver,
  ApiKeyResolver,
  DeadLetterResolver,
  RunnerResolver,
  FeatureViewResolver,
  FeatureViewVersionResolver,
  TrainingResolver,
  StudyResolver,
  TrialResolver,
  StudyResultsResolver,
  ModelVersionResolver,
  ModelResolver,
  LineageNodeResolver,
  RunModelResolver,
  DeploymentResolver,
  VersionTrafficResolver,
  MonitorResolver,
  MonitorReportResolver,
  AlertResolver,
  RetrainingResolver,
] as const;
