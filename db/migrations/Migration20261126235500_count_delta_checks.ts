import { Migration } from '@mikro-orm/migrations';

// With a row per writer (..._segment_count_writers), most additions to a count update a row the
// writer already has: the update trigger checked, on every such statement, that the segment of a
// row whose segment had not changed still existed (a lock and a lookup: a tenth of a SMART event's
// membership statement), and the insert trigger ran its checks over no rows. A row's segment is
// checked only when it changes now, and the insert check returns at once when nothing was inserted.
// What the checks guard is unchanged: a row updated in place was checked when inserted, and a
// segment's deletion removes it (waiting for the writer's transaction).
const REFUSE = `
          raise exception 'insert or update on table "segment_member_count_deltas" violates foreign key constraint "segment_member_count_deltas_segment_id_foreign"'
            using errcode = 'foreign_key_violation', constraint = 'segment_member_count_deltas_segment_id_foreign', table = 'segment_member_count_deltas',
                  detail = 'a row references a segments row of its tenant that does not exist';`;

const STATEMENT_CHECK = (earlyReturn: string) => `
      begin${earlyReturn}
        perform pg_advisory_xact_lock_shared(hashtextextended('segment-references:' || k.segment_id, 0))
           from (select distinct segment_id from written order by segment_id) k;
        if exists (select 1 from (select distinct segment_id from written) k where (select r.id from segments r where r.id = k.segment_id) is null) then${REFUSE}
        end if;
        return null;
      end`;

export class Migration20261126235500_count_delta_checks extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function count_delta_references() returns trigger language plpgsql as $$${STATEMENT_CHECK(`
        if not exists (select 1 from written) then
          return null;
        end if;`)} $$;`);
    this.addSql(`drop trigger segment_member_count_deltas_references_update on "segment_member_count_deltas";`);
    this.addSql(`create function count_delta_segment_changed() returns trigger language plpgsql as $$
      begin
        perform pg_advisory_xact_lock_shared(hashtextextended('segment-references:' || new.segment_id, 0));
        if not exists (select 1 from segments r where r.id = new.segment_id) then${REFUSE}
        end if;
        return null;
      end $$;`);
    this.addSql(`create trigger segment_member_count_deltas_references_update after update of segment_id on "segment_member_count_deltas"
      for each row when (old.segment_id is distinct from new.segment_id) execute function count_delta_segment_changed();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger segment_member_count_deltas_references_update on "segment_member_count_deltas";`);
    this.addSql(`drop function count_delta_segment_changed();`);
    this.addSql(`create trigger segment_member_count_deltas_references_update after update on "segment_member_count_deltas"
      referencing new table as written for each statement execute function count_delta_references();`);
    this.addSql(`create or replace function count_delta_references() returns trigger language plpgsql as $$${STATEMENT_CHECK('')} $$;`);
  }
}
