import { Field, ObjectType } from 'type-graphql';
import { type StoredDeadLetter } from '../domain/shared/dead-letter';
import { Connection } from './connection.types';

@ObjectType('DeadLetter', {
  description:
    'A record a batch writer could not store because of its content, set aside so nothing queued behind it waits.',
})
export class DeadLetterType {
  @Field()
  id!: string;

  @Field({ description: 'The writer, e.g. prediction_log.' })
  source!: string;

  @Field({ description: 'Why the database refused it.' })
  error!: string;

  @Field({ description: 'The record as JSON; characters no database text holds are escaped.' })
  payload!: string;

  @Field()
  createdAt!: Date;

  static from(d: StoredDeadLetter): DeadLetterType {
    return Object.assign(new DeadLetterType(), d);
  }
}

@ObjectType()
export class DeadLetterConnection extends Connection(DeadLetterType) {}
