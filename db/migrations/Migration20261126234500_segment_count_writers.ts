import { Migration } from '@mikro-orm/migrations';

// A segment's real-time count changes were one row per writing statement, folded only by a full
// refresh: every 15 minutes for a SMART segment, never for a STATIC one outside a manual refresh.
// Under a steady stream of events the rows grew with every move, and so did every read of the
// count (12.6 ms for one tenant's 20 segments after 20 s of events; an interval's worth is 45x
// that). Each writer (a PostgreSQL backend, `pg_backend_pid()`) now keeps one row per segment and
// adds to it, as the analytics rollups do: a backend runs one transaction at a time, so no two
// transactions in flight share a row, and a count reads as many rows as backends wrote since the
// last refresh.
export class Migration20261126234500_segment_count_writers extends Migration {
  override async up(): Promise<void> {
    // No writer adds rows of the old shape while the existing ones are folded into the counts.
    this.addSql(`lock table "segment_member_count_deltas" in access exclusive mode;`);
    this.addSql(`update segments s set member_count = s.member_count + d.delta
                   from (select segment_id, sum(delta)::int as delta from segment_member_count_deltas group by segment_id) d
                  where s.id = d.segment_id;`);
    this.addSql(`delete from segment_member_count_deltas;`);
    this.addSql(`drop index "segment_member_count_deltas_segment_idx";`);
    this.addSql(`alter table "segment_member_count_deltas" drop column "id";`);
    this.addSql(`alter table "segment_member_count_deltas" add column "writer" int not null;`);
    this.addSql(`alter table "segment_member_count_deltas" add constraint "segment_member_count_deltas_pkey" primary key ("segment_id", "writer");`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "segment_member_count_deltas" drop constraint "segment_member_count_deltas_pkey";`);
    this.addSql(`alter table "segment_member_count_deltas" drop column "writer";`);
    this.addSql(`alter table "segment_member_count_deltas" add column "id" bigserial primary key;`);
    this.addSql(`create index "segment_member_count_deltas_segment_idx" on "segment_member_count_deltas" ("segment_id");`);
  }
}
