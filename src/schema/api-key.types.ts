import { eventCursor } from '../domain/events/event-bus';
import { EVENT_CURSOR_DESCRIPTION } from './node.types';
import { Field, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { type ApiKey } from '../domain/auth/api-key';
import { type ApiKeyEvent, ApiKeyEventKind } from '../domain/auth/api-key.service';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';
import { Permission, Role } from './role.types';

registerEnumType(ApiKeyEventKind, { name: 'ApiKeyEventKind' });

@ObjectType('ApiKey', {
  implements: Node,
  description: 'An API key. Only a hash of its secret is stored.',
})
export class ApiKeyType extends Node {
  /** Raw id, for relation loading; not a GraphQL field. */
  localId!: string;
  createdById!: string | null;

  @Field()
  name!: string;

  @Field(() => Role)
  role!: Role;

  @Field(() => [Permission])
  permissions!: Permission[];

  @Field({ description: 'Public part of the key (aek_<prefix>_…), to tell keys apart.' })
  prefix!: string;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'Updated at most once a minute.' })
  lastUsedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;

  static from(k: ApiKey): ApiKeyType {
    const t = new ApiKeyType();
    t.id = toGlobalId('ApiKey', k.id);
    t.localId = k.id;
    t.createdById = k.createdById;
    t.name = k.name;
    t.role = k.role;
    t.permissions = k.permissions;
    t.prefix = k.prefix;
    t.createdAt = k.createdAt;
    t.lastUsedAt = k.lastUsedAt;
    t.revokedAt = k.revokedAt;
    return t;
  }
}

@ObjectType()
export class ApiKeyConnection extends Connection(ApiKeyType) {}

@InputType()
export class CreateApiKeyInput {
  @Field()
  name!: string;

  @Field(() => Role)
  role!: Role;

  @Field(() => [Permission], { nullable: true, description: 'None unless given.' })
  permissions?: Permission[] | null;
}

@InputType({ description: 'What to change; fields left out keep their values.' })
export class UpdateApiKeyInput {
  @Field(() => Role, { nullable: true })
  role?: Role | null;

  @Field(() => [Permission], { nullable: true, description: 'The whole new set.' })
  permissions?: Permission[] | null;
}

@ObjectType()
export class CreateApiKeyPayload {
  @Field(() => ApiKeyType)
  apiKey!: ApiKeyType;

  @Field({ description: 'The secret key. Shown once; store it now.' })
  token!: string;
}

@ObjectType('ApiKeyEvent')
export class ApiKeyEventType {
  @Field(() => ApiKeyEventKind)
  kind!: ApiKeyEventKind;

  @Field(() => ID)
  keyId!: string;

  @Field(() => ID, { nullable: true })
  actorKeyId!: string | null;

  @Field()
  at!: Date;

  @Field(() => String, { nullable: true, description: EVENT_CURSOR_DESCRIPTION })
  cursor!: string | null;

  static from(e: ApiKeyEvent): ApiKeyEventType {
    const t = new ApiKeyEventType();
    t.kind = e.kind;
    t.keyId = toGlobalId('ApiKey', e.keyId);
    t.actorKeyId = e.actorKeyId ? toGlobalId('ApiKey', e.actorKeyId) : null;
    t.at = new Date(e.at);
    t.cursor = eventCursor(e);
    return t;
  }
}

@ObjectType('Viewer', { description: 'The caller, as identified by its API key.' })
export class ViewerType {
  @Field(() => ID)
  keyId!: string;

  @Field()
  name!: string;

  @Field(() => Role)
  role!: Role;

  @Field(() => [Permission])
  permissions!: Permission[];
}
