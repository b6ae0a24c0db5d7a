import { Migration } from '@mikro-orm/migrations';

// The membership reference check locked a statement's segments with `(tenant_id, id) in (select
// ... from written)`, which PostgreSQL ran as a merge join walking the segments' primary key from
// its first id to the statement's last: every tenant's older segments were read (209 rows for 8
// on a development database, 0.5 ms of every SMART event's 1.1 ms of checks, and more as the
// platform grows). Each segment is now looked up and locked by its key, in id order as before.
const body = (segmentLock: string) => `
      declare
        wanted bigint;
        locked bigint;
      begin
        select count(*) into wanted from (select distinct tenant_id, segment_id from written) k;
        ${segmentLock}
        get diagnostics locked = row_count;
        if locked < wanted then
          raise exception 'insert or update on table "%" violates foreign key constraint "%"', tg_table_name, tg_table_name || '_segment_id_foreign'
            using errcode = 'foreign_key_violation', constraint = tg_table_name || '_segment_id_foreign', table = tg_table_name,
                  detail = 'a row references a segments row of its tenant that does not exist';
        end if;
        perform pg_advisory_xact_lock_shared(hashtextextended('customer-references:' || t.tenant_id, 0))
           from (select distinct tenant_id from written order by 1) t;
        if exists (select 1 from written w where not exists (select 1 from customers r where r.tenant_id = w.tenant_id and r.id = w.customer_id)) then
          raise exception 'insert or update on table "%" violates foreign key constraint "%"', tg_table_name, tg_table_name || '_customer_id_foreign'
            using errcode = 'foreign_key_violation', constraint = tg_table_name || '_customer_id_foreign', table = tg_table_name,
                  detail = 'a row references a customers row of its tenant that does not exist';
        end if;
        return null;
      end`;

export class Migration20261126160000_membership_segment_lookups extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function membership_references() returns trigger language plpgsql as $$${body(
      `perform 1 from (select distinct tenant_id, segment_id from written order by segment_id) k
           cross join lateral (select 1 from segments r where r.id = k.segment_id and r.tenant_id = k.tenant_id for key share of r) l;`,
    )} $$;`);
  }

  override async down(): Promise<void> {
    this.addSql(`create or replace function membership_references() returns trigger language plpgsql as $$${body(
      `perform 1 from segments r where (r.tenant_id, r.id) in (select tenant_id, segment_id from written) order by r.id for key share of r;`,
    )} $$;`);
  }
}
