import { eventCursor } from '../domain/events/event-bus';
import { EVENT_CURSOR_DESCRIPTION } from './node.types';
import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { type Gpu, type Runner, RunnerStatus, runnerStatus } from '../domain/runners/runner';
import { type RunnerEvent, RunnerEventKind } from '../domain/runners/runner.service';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';

registerEnumType(RunnerStatus, { name: 'RunnerStatus' });
registerEnumType(RunnerEventKind, { name: 'RunnerEventKind' });

@ObjectType('Gpu')
export class GpuType {
  @Field(() => Int)
  index!: number;

  @Field()
  name!: string;

  @Field(() => Int, { nullable: true })
  memoryMb!: number | null;
}

@ObjectType('Runner', {
  implements: Node,
  description: 'A gpu-runner process and its GPU inventory.',
})
export class RunnerType extends Node {
  localId!: string;
  keyId!: string;

  @Field()
  name!: string;

  @Field()
  hostname!: string;

  @Field(() => [GpuType])
  gpus!: GpuType[];

  @Field(() => RunnerStatus)
  status!: RunnerStatus;

  @Field()
  registeredAt!: Date;

  @Field()
  lastHeartbeatAt!: Date;

  @Field(() => Date, { nullable: true })
  stoppedAt!: Date | null;

  static from(r: Runner, now: Date): RunnerType {
    const t = new RunnerType();
    t.id = toGlobalId('Runner', r.id);
    t.localId = r.id;
    t.keyId = r.keyId;
    t.name = r.name;
    t.hostname = r.hostname;
    t.gpus = r.gpus.map((g) => Object.assign(new GpuType(), g));
    t.status = runnerStatus(r, now);
    t.registeredAt = r.registeredAt;
    t.lastHeartbeatAt = r.lastHeartbeatAt;
    t.stoppedAt = r.stoppedAt;
    return t;
  }
}

@ObjectType()
export class RunnerConnection extends Connection(RunnerType) {}

@InputType()
export class GpuInput implements Gpu {
  @Field(() => Int)
  index!: number;

  @Field()
  name!: string;

  @Field(() => Int, { nullable: true })
  memoryMb!: number | null;
}

@InputType()
export class RegisterRunnerInput {
  @Field()
  name!: string;

  @Field()
  hostname!: string;

  @Field(() => [GpuInput])
  gpus!: GpuInput[];

  @Field(() => Int, {
    nullable: true,
    description: 'Runs taken at once; default one per GPU (one without GPUs).',
  })
  slots?: number | null;
}

@ObjectType('RunnerEvent')
export class RunnerEventType {
  @Field(() => RunnerEventKind)
  kind!: RunnerEventKind;

  @Field(() => ID)
  runnerId!: string;

  @Field()
  at!: Date;

  @Field(() => String, { nullable: true, description: EVENT_CURSOR_DESCRIPTION })
  cursor!: string | null;

  static from(e: RunnerEvent): RunnerEventType {
    const t = new RunnerEventType();
    t.kind = e.kind;
    t.runnerId = toGlobalId('Runner', e.runnerId);
    t.at = new Date(e.at);
    t.cursor = eventCursor(e);
    return t;
  }
}
