import { Migration } from '@mikro-orm/migrations';

export class Migration20261124023652_segment_sync extends Migration {

  override name = 'Migration20261124023652_segment_sync';

  override up(): void | Promise<void> {
    this.addSql(`create table "segment_synced_members" ("segment_id" uuid not null, "customer_id" uuid not null, "tenant_id" varchar(100) not null, "synced_at" timestamptz not null default now(), primary key ("segment_id", "customer_id"));`);

    this.addSql(`alter table "segment_synced_members" add constraint "segment_synced_members_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "segment_synced_members" cascade;`);
  }

}
