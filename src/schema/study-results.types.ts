import { Field, ObjectType } from 'type-graphql';
import { type Trial } from '../domain/hpo/study';
import { type ModelVersion } from '../domain/registry/model';
import { TrialType } from './hpo.types';
import { ModelVersionType } from './registry.types';

@ObjectType('RegisterBestPayload', {
  description: 'The best complete trial of a study and the model version registered from its run.',
})
export class RegisterBestPayloadType {
  @Field(() => TrialType)
  trial!: TrialType;

  @Field(() => ModelVersionType)
  modelVersion!: ModelVersionType;

  static from(r: { trial: Trial; version: ModelVersion }): RegisterBestPayloadType {
    return Object.assign(new RegisterBestPayloadType(), {
      trial: TrialType.from(r.trial),
      modelVersion: ModelVersionType.from(r.version),
    });
  }
}
