import { Migration } from '@mikro-orm/migrations';

// Every SMART event key-share-locked the rows of the segments it moved, three to four times (the
// moves statement, the check of each membership table, the count deltas' foreign key): with events
// in flight on other connections, each lock of an already locked row wrote a new multixact to it.
// Writers now hold a shared advisory lock per segment ('segment-references:<id>') and check that the
// segment exists in a later statement (so in a snapshot taken after the lock); a segment's deletion
// takes the lock exclusively in its cascade, before removing what references the segment: it waits
// for the writers in flight, then sees their rows, and a writer after it waits for its commit and
// then finds the segment gone. The customers' references already work so, per tenant. Writers
// that still lock the segment row key-share (merges, journeys, sync) stay safe: the deletion waits
// for them before it reaches its cascade.
// The count deltas lose their foreign key for the same check, and the segments' cascade and
// truncate now cover them.
const REFUSE_SEGMENT = (table: string) => `
          raise exception 'insert or update on table "%" violates foreign key constraint "%"', ${table}, ${table} || '_segment_id_foreign'
            using errcode = 'foreign_key_violation', constraint = ${table} || '_segment_id_foreign', table = ${table},
                  detail = 'a row references a segments row of its tenant that does not exist';`;

// Two statements, not four: the locks (segments in id order, then the tenants), then both checks,
// in a snapshot taken after the locks. A statement names a few segments: each is looked up by a
// scalar subquery, an index probe whatever the planner thinks of the transition table (as a join,
// the check read every tenant's segments on each statement). It can name a tenant's every customer
// (a first population): those stay an anti join, which PostgreSQL plans for their number.
const MEMBERSHIP_REFERENCES = `
      declare
        segment_missing boolean;
        customer_missing boolean;
      begin
        perform pg_advisory_xact_lock_shared(hashtextextended(k.key, 0))
           from (select k.key from (select distinct 'segment-references:' || segment_id as key from written) k order by 1) k
         union all
        select pg_advisory_xact_lock_shared(hashtextextended('customer-references:' || t.tenant_id, 0))
           from (select distinct tenant_id from written order by 1) t;
        select exists (select 1 from (select distinct tenant_id, segment_id from written) k
                        where (select r.id from segments r where r.id = k.segment_id and r.tenant_id = k.tenant_id) is null),
               exists (select 1 from (select distinct tenant_id, customer_id from written) k
                        where not exists (select 1 from customers r where r.tenant_id = k.tenant_id and r.id = k.customer_id))
          into segment_missing, customer_missing;
        if segment_missing then${REFUSE_SEGMENT('tg_table_name')}
        end if;
        if customer_missing then
          raise exception 'insert or update on table "%" violates foreign key constraint "%"', tg_table_name, tg_table_name || '_customer_id_foreign'
            using errcode = 'foreign_key_violation', constraint = tg_table_name || '_customer_id_foreign', table = tg_table_name,
                  detail = 'a row references a customers row of its tenant that does not exist';
        end if;
        return null;
      end`;

const PREVIOUS_MEMBERSHIP_REFERENCES = `
      declare
        wanted bigint;
        locked bigint;
      begin
        select count(*) into wanted from (select distinct tenant_id, segment_id from written) k;
        perform 1 from (select distinct tenant_id, segment_id from written order by segment_id) k
           cross join lateral (select 1 from segments r where r.id = k.segment_id and r.tenant_id = k.tenant_id for key share of r) l;
        get diagnostics locked = row_count;
        if locked < wanted then${REFUSE_SEGMENT('tg_table_name')}
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

// Count deltas carry no tenant: the segment's id alone.
const COUNT_DELTA_REFERENCES = `
      begin
        perform pg_advisory_xact_lock_shared(hashtextextended('segment-references:' || k.segment_id, 0))
           from (select distinct segment_id from written order by segment_id) k;
        if exists (select 1 from (select distinct segment_id from written) k where (select r.id from segments r where r.id = k.segment_id) is null) then${REFUSE_SEGMENT("'segment_member_count_deltas'")}
        end if;
        return null;
      end`;

// What Messaging holds keeps its row lock (the sync's recording statement takes it first itself),
// but locks its segment by key: `(tenant_id, id) in (...)` ran as a merge join along every
// tenant's segments (as the memberships' check did until ..._membership_segment_lookups).
const syncedReferences = (segmentLock: string) => `
      declare
        wanted bigint;
        locked bigint;
      begin
        select count(*) into wanted from (select distinct tenant_id, segment_id from written) k;
        ${segmentLock}
        get diagnostics locked = row_count;
        if locked < wanted then
          raise exception 'insert or update on table "segment_synced_members" violates foreign key constraint "segment_synced_members_segment_id_foreign"'
            using errcode = 'foreign_key_violation', constraint = 'segment_synced_members_segment_id_foreign', table = 'segment_synced_members',
                  detail = 'a row references a segments row of its tenant that does not exist';
        end if;
        return null;
      end`;
const SYNCED_BY_KEY = `perform 1 from (select distinct tenant_id, segment_id from written order by segment_id) k
           cross join lateral (select 1 from segments r where r.id = k.segment_id and r.tenant_id = k.tenant_id for key share of r) l;`;
const SYNCED_BY_JOIN = `perform 1 from segments r where (r.tenant_id, r.id) in (select tenant_id, segment_id from written) order by r.id for key share of r;`;

const cascade = (lock: string, deltas: string) => `
        begin${lock}
          delete from segment_members m using gone where m.tenant_id = gone.tenant_id and m.segment_id = gone.id;
          delete from segment_membership_changes m using gone where m.tenant_id = gone.tenant_id and m.segment_id = gone.id;${deltas}
          return null;
        end`;

export class Migration20261126220000_segment_reference_locks extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function membership_references() returns trigger language plpgsql as $$${MEMBERSHIP_REFERENCES} $$;`);
    this.addSql(`alter table "segment_member_count_deltas" drop constraint "segment_member_count_deltas_segment_id_foreign";`);
    this.addSql(`delete from segment_member_count_deltas d where not exists (select 1 from segments s where s.id = d.segment_id);`);
    this.addSql(`create function count_delta_references() returns trigger language plpgsql as $$${COUNT_DELTA_REFERENCES} $$;`);
    for (const event of ['insert', 'update']) {
      this.addSql(`create trigger segment_member_count_deltas_references_${event} after ${event} on "segment_member_count_deltas"
        referencing new table as written for each statement execute function count_delta_references();`);
    }
    this.addSql(`create or replace function segments_membership_cascade() returns trigger language plpgsql as $$${cascade(`
          perform pg_advisory_xact_lock(hashtextextended('segment-references:' || g.id, 0)) from (select id from gone order by id) g;`, `
          delete from segment_member_count_deltas d using gone where d.segment_id = gone.id;`)} $$;`);
    this.addSql(`create or replace function segment_synced_members_references() returns trigger language plpgsql as $$${syncedReferences(SYNCED_BY_KEY)} $$;`);
    this.addSql(`create or replace function segments_membership_truncate() returns trigger language plpgsql as $$
        begin
          truncate segment_members, segment_membership_changes, segment_synced_members, segment_member_count_deltas;
          return null;
        end $$;`);
  }

  override async down(): Promise<void> {
    this.addSql(`create or replace function segment_synced_members_references() returns trigger language plpgsql as $$${syncedReferences(SYNCED_BY_JOIN)} $$;`);
    this.addSql(`create or replace function segments_membership_truncate() returns trigger language plpgsql as $$
        begin
          truncate segment_members, segment_membership_changes, segment_synced_members;
          return null;
        end $$;`);
    this.addSql(`create or replace function segments_membership_cascade() returns trigger language plpgsql as $$${cascade('', '')} $$;`);
    for (const event of ['insert', 'update']) this.addSql(`drop trigger segment_member_count_deltas_references_${event} on "segment_member_count_deltas";`);
    this.addSql(`drop function count_delta_references();`);
    this.addSql(`delete from segment_member_count_deltas d where not exists (select 1 from segments s where s.id = d.segment_id);`);
    this.addSql(`alter table "segment_member_count_deltas" add constraint "segment_member_count_deltas_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete cascade;`);
    this.addSql(`create or replace function membership_references() returns trigger language plpgsql as $$${PREVIOUS_MEMBERSHIP_REFERENCES} $$;`);
  }
}
