import { Migration } from '@mikro-orm/migrations';

// segment_members and segment_membership_changes take thousands of rows per statement (a batch of
// events with live SMART segments, a refresh). Their four foreign keys checked every row on its
// own, a trigger and a key-share lock each: 60% of the statement that moves a batch's memberships.
// The references are now checked once per statement, over its distinct keys (with their tenant),
// raising what the keys raised (SQLSTATE 23503, the same constraint names):
//  - segments (a statement names a few): locked key-share in id order, as the keys did. A segment
//    deleted before the check is refused; one deleted after it waits for this transaction, then
//    its cascade removes these rows.
//  - customers (a refresh names up to the whole tenant): checked without a row lock, which would
//    write every customer row. Instead a writer takes a shared advisory lock per tenant before the
//    check, and a customer's deletion (never the API's: it marks them DELETED; an operator's or a
//    purge's) takes it exclusively in its cascade: the deletion waits for the tenant's membership
//    writers in flight and then deletes with a fresh snapshot, and a writer after it waits for its
//    commit and then finds the customer gone. Other tenants are not held up. (Read committed, as
//    everything here runs.)
// The cascades of deletions are statement triggers, one set-based delete per statement, and a
// TRUNCATE of segments or customers (which their other keys allow only with CASCADE) truncates the
// membership tables too. Keys (id, tenant_id) of segments and customers never change; a statement
// that changes one is refused, where ON UPDATE CASCADE used to follow it.
const TABLES = ['segment_members', 'segment_membership_changes'];
const REFERENCES = [
  { column: 'segment_id', referenced: 'segments' },
  { column: 'customer_id', referenced: 'customers' },
];

export class Migration20261126081500_membership_references extends Migration {
  override async up(): Promise<void> {
    for (const table of TABLES) {
      for (const { column } of REFERENCES) this.addSql(`alter table "${table}" drop constraint "${table}_${column}_foreign";`);
    }
    const refuse = (column: string, referenced: string) => `
          raise exception 'insert or update on table "%" violates foreign key constraint "%"', tg_table_name, tg_table_name || '_${column}_foreign'
            using errcode = 'foreign_key_violation', constraint = tg_table_name || '_${column}_foreign', table = tg_table_name,
                  detail = 'a row references a ${referenced} row of its tenant that does not exist';`;
    const checks = `
        select count(*) into wanted from (select distinct tenant_id, segment_id from written) k;
        perform 1 from segments r where (r.tenant_id, r.id) in (select tenant_id, segment_id from written) order by r.id for key share of r;
        get diagnostics locked = row_count;
        if locked < wanted then${refuse('segment_id', 'segments')}
        end if;
        perform pg_advisory_xact_lock_shared(hashtextextended('customer-references:' || t.tenant_id, 0))
           from (select distinct tenant_id from written order by 1) t;
        if exists (select 1 from written w where not exists (select 1 from customers r where r.tenant_id = w.tenant_id and r.id = w.customer_id)) then${refuse('customer_id', 'customers')}
        end if;`;
    this.addSql(`create function membership_references() returns trigger language plpgsql as $$
      declare
        wanted bigint;
        locked bigint;
      begin${checks}
        return null;
      end $$;`);
    for (const table of TABLES) {
      for (const event of ['insert', 'update']) {
        this.addSql(`create trigger ${table}_references_${event} after ${event} on "${table}"
          referencing new table as written for each statement execute function membership_references();`);
      }
    }
    for (const { column, referenced } of REFERENCES) {
      const wait = referenced === 'customers'
        ? `perform pg_advisory_xact_lock(hashtextextended('customer-references:' || t.tenant_id, 0)) from (select distinct tenant_id from gone order by 1) t;`
        : '';
      this.addSql(`create function ${referenced}_membership_cascade() returns trigger language plpgsql as $$
        begin
          ${wait}
          delete from segment_members m using gone where m.tenant_id = gone.tenant_id and m.${column} = gone.id;
          delete from segment_membership_changes m using gone where m.tenant_id = gone.tenant_id and m.${column} = gone.id;
          return null;
        end $$;`);
      this.addSql(`create trigger ${referenced}_membership_cascade after delete on "${referenced}"
        referencing old table as gone for each statement execute function ${referenced}_membership_cascade();`);
      const truncated = referenced === 'segments' ? 'segment_members, segment_membership_changes, segment_synced_members' : 'segment_members, segment_membership_changes';
      this.addSql(`create function ${referenced}_membership_truncate() returns trigger language plpgsql as $$
        begin
          truncate ${truncated};
          return null;
        end $$;`);
      this.addSql(`create trigger ${referenced}_membership_truncate after truncate on "${referenced}" for each statement execute function ${referenced}_membership_truncate();`);
    }
    this.addSql(`create function membership_key_change() returns trigger language plpgsql as $$
      begin
        raise exception 'update on table "%" changes a key that memberships reference', tg_table_name
          using errcode = 'foreign_key_violation', table = tg_table_name;
      end $$;`);
    for (const { referenced } of REFERENCES) {
      this.addSql(`create trigger ${referenced}_membership_key_change before update of id, tenant_id on "${referenced}"
        for each row when (old.id is distinct from new.id or old.tenant_id is distinct from new.tenant_id) execute function membership_key_change();`);
    }
  }

  override async down(): Promise<void> {
    for (const { referenced } of REFERENCES) {
      this.addSql(`drop trigger ${referenced}_membership_key_change on "${referenced}";`);
      this.addSql(`drop trigger ${referenced}_membership_truncate on "${referenced}";`);
      this.addSql(`drop function ${referenced}_membership_truncate();`);
    }
    this.addSql(`drop function membership_key_change();`);
    for (const { referenced } of REFERENCES) {
      this.addSql(`drop trigger ${referenced}_membership_cascade on "${referenced}";`);
      this.addSql(`drop function ${referenced}_membership_cascade();`);
    }
    for (const table of TABLES) {
      for (const event of ['insert', 'update']) this.addSql(`drop trigger ${table}_references_${event} on "${table}";`);
    }
    this.addSql(`drop function membership_references();`);
    for (const table of TABLES) {
      for (const { column, referenced } of REFERENCES) {
        this.addSql(`delete from "${table}" t where not exists (select 1 from "${referenced}" r where r.tenant_id = t.tenant_id and r.id = t.${column});`);
        const onUpdate = table === 'segment_members' ? ' on update cascade' : '';
        this.addSql(`alter table "${table}" add constraint "${table}_${column}_foreign" foreign key ("tenant_id", "${column}") references "${referenced}" ("tenant_id", "id")${onUpdate} on delete cascade;`);
      }
    }
  }
}
