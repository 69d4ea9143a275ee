import { Field, ID, InterfaceType } from 'type-graphql';
import { InvalidInputError } from '../domain/shared/domain-error';
import { UUID_RE } from '../domain/shared/uuid';

/** Relay's Node: every object with an identity is reachable through `node(id:)`. */
@InterfaceType({ description: 'An object with a globally unique, opaque ID.' })
export abstract class Node {
  @Field(() => ID, { description: 'Opaque global ID; pass it to `node(id:)`.' })
  id!: string;
}

export enum GlobalIdErrorCode {
  INVALID_ID = 'INVALID_ID',
  TOO_MANY_IDS = 'TOO_MANY_IDS',
}

/** Global IDs are base64url("Type:localId"): opaque to clients, decodable by the server. */
export function toGlobalId(type: string, localId: string): string {
  return Buffer.from(`${type}:${localId}`, 'utf8').toString('base64url');
}

export function fromGlobalId(id: string): { type: string; localId: string } | null {
  const text = Buffer.from(id, 'base64url').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) return null;
  return { type: text.slice(0, i), localId: text.slice(i + 1) };
}

/** Decodes an ID that must name an object of `type`; anything else is BAD_USER_INPUT. */
export function localIdOf(id: string, type: string): string {
  const g = fromGlobalId(id);
  if (!g || g.type !== type || !UUID_RE.test(g.localId)) {
    const shown = id.length > 80 ? `${id.slice(0, 80)}…` : id;
    throw new InvalidInputError(
      GlobalIdErrorCode.INVALID_ID,
      `"${shown}" is not a valid ${type} ID`,
      {
        expectedType: type,
      },
    );
  }
  return g.localId;
}

/** The `cursor` of subscription events, and the `after` that resumes from one. */
export const EVENT_CURSOR_DESCRIPTION =
  'Where this event sits in the one order every api process shares: give it as `after` to resume a subscription after it (events are delivered at least once; drop a cursor seen before).';
export const AFTER_DESCRIPTION =
  'Resume after this event cursor: the events since are delivered first, then live ones.';
