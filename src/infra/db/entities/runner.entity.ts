import { Column, Entity, PrimaryColumn } from 'typeorm';

export interface GpuJson {
  index: number;
  name: string;
  memoryMb: number | null;
}

@Entity({ name: 'runner' })
export class RunnerEntity {
  @PrimaryColumn('uuid', { default: () => 'gen_random_uuid()' })
  id!: string;

  @Column('text')
  name!: string;

  @Column('text')
  hostname!: string;

  @Column('jsonb')
  gpus!: GpuJson[];

  @Column('uuid', { name: 'key_id' })
  keyId!: string;

  @Column({ type: 'timestamptz', name: 'registered_at', precision: 3 })
  registeredAt!: Date;

  @Column({ type: 'timestamptz', name: 'last_heartbeat_at', precision: 3 })
  lastHeartbeatAt!: Date;

  @Column({ type: 'timestamptz', name: 'stopped_at', precision: 3, nullable: true })
  stoppedAt!: Date | null;
}
