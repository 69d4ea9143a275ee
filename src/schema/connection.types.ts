import { type ClassType, Field, ObjectType } from 'type-graphql';
import { type Cursor, encodeCursor, type Page } from '../domain/shared/pagination';

@ObjectType({ description: 'Relay page information.' })
export class PageInfo {
  @Field()
  hasNextPage!: boolean;

  @Field()
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true })
  startCursor!: string | null;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export interface EdgeShape<T> {
  cursor: string;
  node: T;
}

export interface ConnectionShape<T> {
  edges: EdgeShape<T>[];
  pageInfo: PageInfo;
}

/** Builds `<Name>Connection` and `<Name>Edge` object types for a node type. */
export function Connection<T extends object>(nodeType: ClassType<T>) {
  const name = nodeType.name.replace(/Type$/, '');

  @ObjectType(`${name}Edge`)
  class Edge implements EdgeShape<T> {
    @Field()
    cursor!: string;

    @Field(() => nodeType)
    node!: T;
  }

  @ObjectType()
  abstract class ConnectionClass implements ConnectionShape<T> {
    @Field(() => [Edge])
    edges!: Edge[];

    @Field(() => PageInfo)
    pageInfo!: PageInfo;
  }
  return ConnectionClass;
}

/** Maps a domain page to a connection; `cursorOf` gives each item's keyset position. */
export function toConnection<D, T>(
  page: Page<D>,
  map: (d: D) => T,
  cursorOf: (d: D) => Cursor,
): ConnectionShape<T> {
  const edges = page.items.map((d) => ({ cursor: encodeCursor(cursorOf(d)), node: map(d) }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  };
}
