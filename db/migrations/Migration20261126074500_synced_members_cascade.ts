import { Migration } from '@mikro-orm/migrations';

// segment_synced_members takes up to 1,000 rows per acknowledged sync batch. Its foreign key to
// segments checked every row on its own (a key-share lock on the same segment row, per row), which
// was most of the cost of recording a batch. The sync now locks the segment once per statement
// (activities/segments.ts: a segment deleted meanwhile waits for that statement's commit, or is
// seen gone and nothing is written), and the cascade of a deletion is this statement trigger.
export class Migration20261126074500_synced_members_cascade extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "segment_synced_members" drop constraint "segment_synced_members_segment_id_foreign";`);
    this.addSql(`create function segment_synced_members_cascade() returns trigger language plpgsql as $$
      begin
        delete from segment_synced_members s using gone where s.segment_id = gone.id;
        return null;
      end $$;`);
    this.addSql(`create trigger segments_synced_members_cascade after delete on segments
      referencing old table as gone for each statement execute function segment_synced_members_cascade();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger segments_synced_members_cascade on segments;`);
    this.addSql(`drop function segment_synced_members_cascade();`);
    this.addSql(`delete from segment_synced_members s where not exists (select 1 from segments g where g.id = s.segment_id and g.tenant_id = s.tenant_id);`);
    this.addSql(`alter table "segment_synced_members" add constraint "segment_synced_members_segment_id_foreign" foreign key ("tenant_id", "segment_id") references "segments" ("tenant_id", "id") on delete cascade;`);
  }
}
