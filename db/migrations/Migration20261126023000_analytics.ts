import { Migration } from '@mikro-orm/migrations';

// Analytics rollups: counts that a report would otherwise scan millions of rows for, kept by
// statement-level triggers (transition tables, one set-based write per statement) in the same
// transaction as the write that changes them, whoever writes (services, COPY imports, cascades).
// Each write adds to rows of its own: `writer` is the writing backend's pid, so two concurrent
// transactions never touch one rollup row (no waiting on a tenant's hot row, and no deadlock
// between statements that add to several rows); readers sum a key's writers. The backfill is
// writer 0.
//  - analytics_customer_totals: customers per status and lifecycle stage, with the sums and counts
//    of engagement and churn-risk scores (for the averages) and how many are at risk (churn ≥ 70).
//  - analytics_activity_hours: activities per UTC hour of occurred_at.
//  - analytics_delivery_hours: per campaign, channel and UTC hour of sending (sent_at, or when the
//    row was made while a receipt has outrun the send's own write), the deliveries sent, delivered,
//    bounced, opened, clicked and converted, as campaign stats count them. Opened, clicked and
//    converted are flags on the delivery (opened_at...: its first such interaction, kept by a
//    trigger on campaign_interactions), so the rollup is a function of delivery rows alone.

const writer = 'pg_backend_pid()';

interface Rollup {
  table: string;
  source: string;
  key: string[];
  /** SQL of each measure over one source row. */
  measures: Record<string, string>;
  /** Key columns as computed from a source row, when not the row's own column. */
  keyExpr?: Record<string, string>;
  where?: string;
}

const CUSTOMERS: Rollup = {
  table: 'analytics_customer_totals',
  source: 'customers',
  key: ['tenant_id', 'status', 'lifecycle_stage'],
  measures: {
    customers: '1',
    engagement_sum: 'coalesce(engagement_score, 0)',
    engagement_count: '(engagement_score is not null)::int',
    churn_risk_sum: 'coalesce(churn_risk_score, 0)',
    churn_risk_count: '(churn_risk_score is not null)::int',
    at_risk: 'coalesce((churn_risk_score >= 70)::int, 0)',
  },
};

const ACTIVITIES: Rollup = {
  table: 'analytics_activity_hours',
  source: 'activities',
  key: ['tenant_id', 'hour'],
  keyExpr: { hour: `date_trunc('hour', occurred_at, 'UTC')` },
  measures: { activities: '1' },
};

const SENT = `status in ('SENT', 'DELIVERED', 'BOUNCED')`;
const DELIVERIES: Rollup = {
  table: 'analytics_delivery_hours',
  source: 'campaign_deliveries',
  key: ['tenant_id', 'hour', 'campaign_id', 'channel'],
  keyExpr: { hour: `date_trunc('hour', coalesce(sent_at, created_at), 'UTC')` },
  measures: {
    sent: `(${SENT})::int`,
    delivered: `(status = 'DELIVERED')::int`,
    bounced: `(status = 'BOUNCED')::int`,
    opened: '(opened_at is not null)::int',
    clicked: '(clicked_at is not null)::int',
    converted: '(converted_at is not null)::int',
  },
  // Rows that count nothing (pending, skipped, failed) are left out before grouping.
  where: `(${SENT} or opened_at is not null or clicked_at is not null or converted_at is not null)`,
};

/** The source rows of one transition table as signed contributions. */
function contributions(r: Rollup, from: string, sign: 1 | -1): string {
  const keys = r.key.map((k) => (r.keyExpr?.[k] ? `${r.keyExpr[k]} as ${k}` : k));
  const measures = Object.entries(r.measures).map(([m, sql]) => `${sign === 1 ? '' : '-'}${sql} as ${m}`);
  return `select ${[...keys, ...measures].join(', ')} from ${from}${r.where ? ` where ${r.where}` : ''}`;
}

/** One INSERT … ON CONFLICT adding the net change of the statement, in key order (no deadlocks between writers). */
function upsert(r: Rollup, from: string, writerSql: string): string {
  const m = Object.keys(r.measures);
  return `insert into ${r.table} as t (${[...r.key, 'writer', ...m].join(', ')})
    select ${r.key.join(', ')}, ${writerSql}, ${m.map((x) => `sum(${x})`).join(', ')}
      from (${from}) d
     group by ${r.key.join(', ')}
    having ${m.map((x) => `sum(${x}) <> 0`).join(' or ')}
     order by ${r.key.join(', ')}
    on conflict (${[...r.key, 'writer'].join(', ')}) do update set ${m.map((x) => `${x} = t.${x} + excluded.${x}`).join(', ')}`;
}

function triggers(r: Rollup): string[] {
  const fn = (op: string) => `${r.table}_${op}`;
  const body = (from: string) => `create function ${from} returns trigger language plpgsql as $$ begin `;
  const sources = {
    insert: contributions(r, 'new_rows', 1),
    delete: contributions(r, 'old_rows', -1),
    update: `${contributions(r, 'old_rows', -1)} union all ${contributions(r, 'new_rows', 1)}`,
  };
  return (['insert', 'update', 'delete'] as const).flatMap((op) => [
    `${body(`${fn(op)}()`)}${upsert(r, sources[op], writer)}; return null; end $$;`,
    `create trigger ${fn(op)} after ${op} on ${r.source} referencing ${op === 'insert' ? 'new table as new_rows' : op === 'delete' ? 'old table as old_rows' : 'old table as old_rows new table as new_rows'} for each statement execute function ${fn(op)}();`,
  ]);
}

export class Migration20261126023000_analytics extends Migration {

  override name = 'Migration20261126023000_analytics';

  override up(): void | Promise<void> {
    // Writers wait for the backfill: the rollups start equal to a recount.
    this.addSql(`lock table customers, activities, campaign_deliveries, campaign_interactions in share row exclusive mode;`);

    this.addSql(`alter table "campaign_deliveries" add "opened_at" timestamptz null, add "clicked_at" timestamptz null, add "converted_at" timestamptz null;`);
    this.addSql(`create index "campaign_interactions_delivery_idx" on "campaign_interactions" ("delivery_id", "type") where delivery_id is not null;`);
    this.addSql(`create index "campaign_deliveries_tenant_sent_idx" on "campaign_deliveries" ("tenant_id", (coalesce(sent_at, created_at)));`);
    this.addSql(`update campaign_deliveries d set opened_at = i.opened_at, clicked_at = i.clicked_at, converted_at = i.converted_at
      from (select delivery_id, min(occurred_at) filter (where type = 'OPENED') as opened_at, min(occurred_at) filter (where type = 'CLICKED') as clicked_at,
                   min(occurred_at) filter (where type = 'CONVERTED') as converted_at
              from campaign_interactions where delivery_id is not null and type in ('OPENED', 'CLICKED', 'CONVERTED') group by delivery_id) i
     where d.id = i.delivery_id;`);

    // The flags: set by an interaction's arrival (the first one counts; the delivery row's lock,
    // taken in id order like receipts take it, orders concurrent first opens), recounted from what
    // remains when interactions go.
    this.addSql(`create function campaign_interactions_flag_insert() returns trigger language plpgsql as $$ begin
      with n as (
        select delivery_id, min(occurred_at) filter (where type = 'OPENED') as opened_at, min(occurred_at) filter (where type = 'CLICKED') as clicked_at,
               min(occurred_at) filter (where type = 'CONVERTED') as converted_at
          from new_rows where delivery_id is not null and type in ('OPENED', 'CLICKED', 'CONVERTED') group by delivery_id
      ), unset as (
        select d.id from campaign_deliveries d join n on d.id = n.delivery_id
         where (d.opened_at is null and n.opened_at is not null) or (d.clicked_at is null and n.clicked_at is not null) or (d.converted_at is null and n.converted_at is not null)
         order by d.id for no key update of d
      )
      update campaign_deliveries d
         set opened_at = coalesce(d.opened_at, n.opened_at), clicked_at = coalesce(d.clicked_at, n.clicked_at), converted_at = coalesce(d.converted_at, n.converted_at)
        from n where d.id = n.delivery_id and d.id in (select id from unset);
      return null; end $$;`);
    this.addSql(`create trigger campaign_interactions_flag_insert after insert on campaign_interactions referencing new table as new_rows for each statement execute function campaign_interactions_flag_insert();`);
    this.addSql(`create function campaign_interactions_flag_delete() returns trigger language plpgsql as $$ begin
      update campaign_deliveries d
         set opened_at = (select min(i.occurred_at) from campaign_interactions i where i.delivery_id = d.id and i.type = 'OPENED'),
             clicked_at = (select min(i.occurred_at) from campaign_interactions i where i.delivery_id = d.id and i.type = 'CLICKED'),
             converted_at = (select min(i.occurred_at) from campaign_interactions i where i.delivery_id = d.id and i.type = 'CONVERTED')
       where d.id in (select delivery_id from old_rows where delivery_id is not null and type in ('OPENED', 'CLICKED', 'CONVERTED'));
      return null; end $$;`);
    this.addSql(`create trigger campaign_interactions_flag_delete after delete on campaign_interactions referencing old table as old_rows for each statement execute function campaign_interactions_flag_delete();`);

    this.addSql(`create table "analytics_customer_totals" ("tenant_id" varchar(100) not null, "status" text not null, "lifecycle_stage" text not null, "writer" int not null,
      "customers" bigint not null, "engagement_sum" bigint not null, "engagement_count" bigint not null,
      "churn_risk_sum" bigint not null, "churn_risk_count" bigint not null, "at_risk" bigint not null,
      primary key ("tenant_id", "status", "lifecycle_stage", "writer"));`);
    this.addSql(`create table "analytics_activity_hours" ("tenant_id" varchar(100) not null, "hour" timestamptz not null, "writer" int not null,
      "activities" bigint not null, primary key ("tenant_id", "hour", "writer"));`);
    this.addSql(`create table "analytics_delivery_hours" ("tenant_id" varchar(100) not null, "hour" timestamptz not null, "campaign_id" uuid not null, "channel" text not null, "writer" int not null,
      "sent" bigint not null, "delivered" bigint not null, "bounced" bigint not null,
      "opened" bigint not null, "clicked" bigint not null, "converted" bigint not null,
      primary key ("tenant_id", "hour", "campaign_id", "channel", "writer"));`);

    for (const r of [CUSTOMERS, ACTIVITIES, DELIVERIES]) {
      this.addSql(`${upsert(r, contributions(r, r.source, 1), '0')};`);
      for (const sql of triggers(r)) this.addSql(sql);
    }
  }

  override down(): void | Promise<void> {
    for (const r of [CUSTOMERS, ACTIVITIES, DELIVERIES]) {
      for (const op of ['insert', 'update', 'delete']) {
        this.addSql(`drop trigger if exists ${r.table}_${op} on ${r.source};`);
        this.addSql(`drop function if exists ${r.table}_${op}();`);
      }
      this.addSql(`drop table if exists ${r.table};`);
    }
    for (const op of ['insert', 'delete']) {
      this.addSql(`drop trigger if exists campaign_interactions_flag_${op} on campaign_interactions;`);
      this.addSql(`drop function if exists campaign_interactions_flag_${op}();`);
    }
    this.addSql(`drop index if exists "campaign_deliveries_tenant_sent_idx";`);
    this.addSql(`drop index if exists "campaign_interactions_delivery_idx";`);
    this.addSql(`alter table "campaign_deliveries" drop column "opened_at", drop column "clicked_at", drop column "converted_at";`);
  }

}
