import { Migration } from '@mikro-orm/migrations';

/**
 * The campaign send engine: delivery claims and skip reasons, campaign options beyond the spec,
 * the plain-text part of email templates, hard bounces, and the reaction outbox. Campaign counters
 * go: they are counted from deliveries and interactions instead of being updated on one hot row.
 */
export class Migration20261125202207_campaigns extends Migration {

  override name = 'Migration20261125202207_campaigns';

  override up(): void | Promise<void> {
    this.addSql(`create table "reaction_outbox" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "kind" varchar(50) not null, "key" varchar(300) not null, "payload" jsonb not null, "created_at" timestamptz not null default now(), "dispatched_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "reaction_outbox_pending_idx" on "reaction_outbox" ("created_at") where dispatched_at is null;`);
    this.addSql(`alter table "reaction_outbox" add constraint "reaction_outbox_key_uniq" unique ("tenant_id", "kind", "key");`);

    this.addSql(`alter table "customers" add "email_bounced_at" timestamptz null;`);

    this.addSql(`alter table "message_templates" add "text_body" text null;`);
    this.addSql(`alter table "message_templates" add constraint "message_templates_tenant_id_uniq" unique ("tenant_id", "id");`);

    this.addSql(`alter table "campaigns" drop column "target_count", drop column "sent_count", drop column "delivered_count", drop column "opened_count", drop column "clicked_count", drop column "converted_count", drop column "unsubscribed_count", drop column "bounced_count";`);
    this.addSql(`alter table "campaigns" add "resumed_at" timestamptz null, add "conversion_event" varchar(200) null, add "send_in_recipient_timezone" boolean not null default false, add "quiet_hours" jsonb null, add "frequency_cap" int null;`);

    this.addSql(`alter table "campaign_deliveries" drop constraint "campaign_deliveries_status_check";`);
    this.addSql(`alter table "campaign_deliveries" add "skip_reason" text null, add "send_at" timestamptz null, add "claimed_by" varchar(300) null, add "attempts" int not null default 0;`);
    this.addSql(`create index "campaign_deliveries_claim_idx" on "campaign_deliveries" ("campaign_id", "run_key", "status", "id");`);
    this.addSql(`create index "campaign_deliveries_customer_sent_idx" on "campaign_deliveries" ("tenant_id", "customer_id", "sent_at");`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_skip_reason_check" check ("skip_reason" in ('NO_CONSENT', 'NO_ADDRESS', 'BOUNCED', 'INACTIVE', 'FREQUENCY_CAP', 'NO_TEMPLATE'));`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_status_check" check ("status" in ('PENDING', 'SENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED', 'SKIPPED', 'CANCELLED'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "reaction_outbox" cascade;`);

    this.addSql(`drop index "campaign_deliveries_claim_idx";`);
    this.addSql(`drop index "campaign_deliveries_customer_sent_idx";`);
    this.addSql(`alter table "campaign_deliveries" drop constraint "campaign_deliveries_skip_reason_check";`);
    this.addSql(`alter table "campaign_deliveries" drop constraint "campaign_deliveries_status_check";`);
    this.addSql(`delete from "campaign_deliveries" where "status" not in ('PENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED');`);
    this.addSql(`alter table "campaign_deliveries" drop column "skip_reason", drop column "send_at", drop column "claimed_by", drop column "attempts";`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_status_check" check ("status" in ('PENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED'));`);

    this.addSql(`alter table "campaigns" drop column "resumed_at", drop column "conversion_event", drop column "send_in_recipient_timezone", drop column "quiet_hours", drop column "frequency_cap";`);
    this.addSql(`alter table "campaigns" add "target_count" int4 not null default 0, add "sent_count" int4 not null default 0, add "delivered_count" int4 not null default 0, add "opened_count" int4 not null default 0, add "clicked_count" int4 not null default 0, add "converted_count" int4 not null default 0, add "unsubscribed_count" int4 not null default 0, add "bounced_count" int4 not null default 0;`);

    this.addSql(`alter table "customers" drop column "email_bounced_at";`);

    this.addSql(`alter table "message_templates" drop constraint "message_templates_tenant_id_uniq";`);
    this.addSql(`alter table "message_templates" drop column "text_body";`);
  }

}
