import { Migration } from '@mikro-orm/migrations';

// segment_synced_members takes up to 1,000 rows per acknowledged sync batch. Its foreign key to
// segments checked every row on its own (a key-share lock on the same segment row, per row), which
// was most of the cost of recording a batch. The reference is now checked once per statement, by
// a trigger that locks the statement's distinct segments key-share (a segment deleted meanwhile
// waits for the writer's commit, or is seen gone and the statement refused with the key's 23503
// and name), and the cascade of a deletion is a statement trigger. (The sync's recording statement
// takes the same lock itself first, to end as SegmentNotFound rather than on the error.)
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
    this.addSql(`create function segment_synced_members_references() returns trigger language plpgsql as $$
      declare
        wanted bigint;
        locked bigint;
      begin
        select count(*) into wanted from (select distinct tenant_id, segment_id from written) k;
        perform 1 from segments r where (r.tenant_id, r.id) in (select tenant_id, segment_id from written) order by r.id for key share of r;
        get diagnostics locked = row_count;
        if locked < wanted then
          raise exception 'insert or update on table "segment_synced_members" violates foreign key constraint "segment_synced_members_segment_id_foreign"'
            using errcode = 'foreign_key_violation', constraint = 'segment_synced_members_segment_id_foreign', table = 'segment_synced_members',
                  detail = 'a row references a segments row of its tenant that does not exist';
        end if;
        return null;
      end $$;`);
    for (const event of ['insert', 'update']) {
      this.addSql(`create trigger segment_synced_members_references_${event} after ${event} on segment_synced_members
        referencing new table as written for each statement execute function segment_synced_members_references();`);
    }
  }

  override async down(): Promise<void> {
    for (const event of ['insert', 'update']) this.addSql(`drop trigger segment_synced_members_references_${event} on segment_synced_members;`);
    this.addSql(`drop function segment_synced_members_references();`);
    this.addSql(`drop trigger segments_synced_members_cascade on segments;`);
    this.addSql(`drop function segment_synced_members_cascade();`);
    this.addSql(`delete from segment_synced_members s where not exists (select 1 from segments g where g.id = s.segment_id and g.tenant_id = s.tenant_id);`);
    this.addSql(`alter table "segment_synced_members" add constraint "segment_synced_members_segment_id_foreign" foreign key ("tenant_id", "segment_id") references "segments" ("tenant_id", "id") on delete cascade;`);
  }
}
