import { Migration } from '@mikro-orm/migrations';

export class Migration20261124025504_segments extends Migration {

  override name = 'Migration20261124025504_segments';

  override up(): void | Promise<void> {
    this.addSql(`create table "segment_member_count_deltas" ("id" bigserial primary key, "segment_id" uuid not null, "delta" int not null);`);
    this.addSql(`create index "segment_member_count_deltas_segment_idx" on "segment_member_count_deltas" ("segment_id");`);

    this.addSql(`create table "segment_synced_members" ("segment_id" uuid not null, "customer_id" uuid not null, "tenant_id" varchar(100) not null, "fingerprint" varchar(32) not null, "synced_at" timestamptz not null default now(), primary key ("segment_id", "customer_id"));`);

    this.addSql(`alter table "segment_member_count_deltas" add constraint "segment_member_count_deltas_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete cascade;`);

    this.addSql(`alter table "segment_synced_members" add constraint "segment_synced_members_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "segment_member_count_deltas" cascade;`);
    this.addSql(`drop table if exists "segment_synced_members" cascade;`);
  }

}
