import { Migration } from '@mikro-orm/migrations';

/**
 * Event promotions: the latest state of each promoted source (competitions, club events, special
 * events, as upstream events describe them), and one row per announcement, reminder or manual run
 * of a promotion, unique by its key, so nothing is sent twice.
 */
export class Migration20261126022000_promotions extends Migration {

  override name = 'Migration20261126022000_promotions';

  override up(): void | Promise<void> {
    this.addSql(`create table "promotion_sources" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "source_type" text not null, "source_id" varchar(200) not null, "club_id" varchar(100) not null, "title" varchar(500) not null, "description" text null, "starts_at" timestamptz not null, "ends_at" timestamptz null, "location" varchar(500) null, "url" text not null, "image_url" text null, "cancelled_at" timestamptz null, "occurred_at" timestamptz not null, "source_service" varchar(100) not null, "source_event_id" varchar(200) not null, primary key ("id"));`);
    this.addSql(`alter table "promotion_sources" add constraint "promotion_sources_source_uniq" unique ("tenant_id", "source_type", "source_id");`);
    this.addSql(`alter table "promotion_sources" add constraint "promotion_sources_source_type_check" check ("source_type" in ('COMPETITION', 'CLUB_EVENT', 'SPECIAL'));`);

    this.addSql(`create table "promotion_sends" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "promotion_id" uuid not null, "key" varchar(300) not null, "kind" text not null, "campaign_id" uuid null, "recipient_count" int not null default 0, "event" jsonb not null, primary key ("id"));`);
    this.addSql(`create index "promotion_sends_promotion_idx" on "promotion_sends" ("tenant_id", "promotion_id", "created_at");`);
    this.addSql(`create index "promotion_sends_campaign_idx" on "promotion_sends" ("tenant_id", "campaign_id");`);
    this.addSql(`alter table "promotion_sends" add constraint "promotion_sends_key_uniq" unique ("tenant_id", "key");`);
    this.addSql(`alter table "promotion_sends" add constraint "promotion_sends_kind_check" check ("kind" in ('ANNOUNCE', 'REMINDER', 'MANUAL'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "promotion_sends" cascade;`);
    this.addSql(`drop table if exists "promotion_sources" cascade;`);
  }

}
