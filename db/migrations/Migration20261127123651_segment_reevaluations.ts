import { Migration } from '@mikro-orm/migrations';

// SMART segments re-evaluate changed customers after the change commits, not inside it: the
// change's transaction writes a row here, and the API's drainer (domain/segments/reevaluations.ts)
// evaluates the rows it takes in batches.
export class Migration20261127123651_segment_reevaluations extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "segment_reevaluations" ("id" bigserial primary key, "tenant_id" varchar(100) not null, "customer_id" uuid not null, "cause" varchar(100) not null, "enqueued_at" timestamptz not null default now(), "attempts" int not null default 0, "next_attempt_at" timestamptz null);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "segment_reevaluations";`);
  }
}
