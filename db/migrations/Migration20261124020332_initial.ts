import { Migration } from '@mikro-orm/migrations';

export class Migration20261124020332_initial extends Migration {

  override name = 'Migration20261124020332_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "clubs" ("tenant_id" varchar(100) not null, "id" varchar(100) not null, "name" varchar(255) null, "timezone" varchar(64) null, "created_at" timestamptz not null default now(), primary key ("tenant_id", "id"));`);

    this.addSql(`create table "customers" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "email" varchar(255) null, "phone_number" varchar(20) null, "auth_user_id" varchar(100) null, "first_name" varchar(255) null, "last_name" varchar(255) null, "status" text not null default 'ACTIVE', "lifecycle_stage" text not null default 'SUBSCRIBER', "membership_tier" varchar(100) null, "membership_status" varchar(100) null, "handicap" double precision null, "home_club_id" varchar(100) null, "engagement_score" int null, "churn_risk_score" int null, "lifetime_value" int null, "email_opt_in" boolean not null default false, "sms_opt_in" boolean not null default false, "push_opt_in" boolean not null default false, "last_activity_at" timestamptz null, "merged_into_id" uuid null, "merged_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "customers_tenant_live_idx" on "customers" ("tenant_id", "id") where status <> 'MERGED' and status <> 'DELETED';`);
    this.addSql(`create index "customers_tenant_last_activity_idx" on "customers" ("tenant_id", "last_activity_at");`);
    this.addSql(`create index "customers_tenant_status_idx" on "customers" ("tenant_id", "status");`);
    this.addSql(`create index "customers_tenant_engagement_idx" on "customers" ("tenant_id", "engagement_score");`);
    this.addSql(`create index "customers_tenant_churn_risk_idx" on "customers" ("tenant_id", "churn_risk_score");`);
    this.addSql(`create unique index "customers_tenant_email_live_uniq" on "customers" ("tenant_id", "email") where email is not null and status <> 'MERGED' and status <> 'DELETED';`);
    this.addSql(`create unique index "customers_tenant_phone_live_uniq" on "customers" ("tenant_id", "phone_number") where phone_number is not null and status <> 'MERGED' and status <> 'DELETED';`);
    this.addSql(`create unique index "customers_tenant_auth_user_live_uniq" on "customers" ("tenant_id", "auth_user_id") where auth_user_id is not null and status <> 'MERGED' and status <> 'DELETED';`);

    this.addSql(`create table "activities" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "customer_id" uuid not null, "type" varchar(200) not null, "category" text not null, "title" varchar(500) not null, "description" text null, "occurred_at" timestamptz not null, "metadata" jsonb null, "source_service" varchar(100) null, "source_event_id" varchar(200) null, "created_at" timestamptz not null default now(), primary key ("id"));`);
    this.addSql(`create index "activities_timeline_idx" on "activities" ("tenant_id", "customer_id", "occurred_at", "id");`);
    this.addSql(`create index "activities_tenant_category_idx" on "activities" ("tenant_id", "category", "occurred_at");`);
    this.addSql(`create unique index "activities_source_event_uniq" on "activities" ("tenant_id", "source_service", "source_event_id") where source_service is not null and source_event_id is not null;`);

    this.addSql(`create table "journeys" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "name" varchar(255) not null, "description" text null, "status" text not null default 'DRAFT', "trigger_type" varchar(100) not null, "trigger_config" jsonb null, "allow_reentry" boolean not null default false, "timezone" varchar(64) null, "total_enrolled" int not null default 0, "total_completed" int not null default 0, "total_exited" int not null default 0, "activated_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "journeys_tenant_status_idx" on "journeys" ("tenant_id", "status", "trigger_type");`);

    this.addSql(`create table "journey_enrollments" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "journey_id" uuid not null, "customer_id" uuid not null, "status" text not null default 'ACTIVE', "current_step_number" int null, "waiting_until" timestamptz null, "enrolled_at" timestamptz not null default now(), "completed_at" timestamptz null, "exited_at" timestamptz null, "workflow_id" varchar(255) null, primary key ("id"));`);
    this.addSql(`create index "journey_enrollments_journey_idx" on "journey_enrollments" ("tenant_id", "journey_id", "status");`);
    this.addSql(`create index "journey_enrollments_customer_idx" on "journey_enrollments" ("tenant_id", "customer_id");`);
    this.addSql(`create unique index "journey_enrollments_active_uniq" on "journey_enrollments" ("journey_id", "customer_id") where status = 'ACTIVE';`);

    this.addSql(`create table "journey_steps" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "journey_id" uuid not null, "step_number" int not null, "type" text not null, "name" varchar(255) null, "config" jsonb not null, "next_step_id" uuid null, "next_step_yes_id" uuid null, "next_step_no_id" uuid null, primary key ("id"));`);
    this.addSql(`alter table "journey_steps" add constraint "journey_steps_number_uniq" unique ("journey_id", "step_number");`);

    this.addSql(`create table "journey_enrollment_steps" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "enrollment_id" uuid not null, "step_id" uuid not null, "status" text not null default 'PENDING', "started_at" timestamptz null, "completed_at" timestamptz null, "error" text null, primary key ("id"));`);
    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_uniq" unique ("enrollment_id", "step_id");`);

    this.addSql(`create table "message_templates" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "name" varchar(255) not null, "channel" text not null, "subject" varchar(255) null, "body" text not null, primary key ("id"));`);
    this.addSql(`create index "message_templates_tenant_idx" on "message_templates" ("tenant_id", "channel");`);

    this.addSql(`create table "notes" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "customer_id" uuid not null, "content" text not null, "type" text not null default 'GENERAL', "is_pinned" boolean not null default false, "created_by" varchar(200) not null, "created_by_name" varchar(255) null, primary key ("id"));`);
    this.addSql(`create index "notes_customer_idx" on "notes" ("tenant_id", "customer_id", "is_pinned", "created_at");`);

    this.addSql(`create table "segments" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "name" varchar(255) not null, "description" text null, "type" text not null, "criteria" jsonb null, "is_active" boolean not null default true, "member_count" int not null default 0, "refresh_interval_minutes" int not null default 15, "last_refreshed_at" timestamptz null, "messaging_segment_id" varchar(255) null, "last_synced_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "segments_tenant_type_idx" on "segments" ("tenant_id", "type", "is_active");`);
    this.addSql(`alter table "segments" add constraint "segments_tenant_name_uniq" unique ("tenant_id", "name");`);

    this.addSql(`create table "event_promotions" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "club_id" varchar(100) not null, "source_type" text not null, "source_id" varchar(200) not null, "auto_promote" boolean not null default false, "channels" text[] not null default '{}', "announce_at" timestamptz null, "reminder_days" int[] not null default '{}', "segment_id" uuid null, "email_template_id" varchar(100) null, "sms_template_id" varchar(100) null, "social_content" text null, "last_promoted_at" timestamptz null, "is_active" boolean not null default true, primary key ("id"));`);
    this.addSql(`create index "event_promotions_tenant_club_idx" on "event_promotions" ("tenant_id", "club_id");`);
    this.addSql(`alter table "event_promotions" add constraint "event_promotions_source_uniq" unique ("tenant_id", "source_type", "source_id");`);

    this.addSql(`create table "campaigns" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "club_id" varchar(100) null, "name" varchar(255) not null, "description" text null, "type" text not null, "status" text not null default 'DRAFT', "channels" text[] not null default '{}', "segment_id" uuid null, "email_template_id" varchar(100) null, "sms_template_id" varchar(100) null, "timezone" varchar(64) null, "schedule" jsonb null, "trigger_event" varchar(200) null, "trigger_conditions" jsonb null, "scheduled_at" timestamptz null, "started_at" timestamptz null, "paused_at" timestamptz null, "completed_at" timestamptz null, "cancelled_at" timestamptz null, "target_count" int not null default 0, "sent_count" int not null default 0, "delivered_count" int not null default 0, "opened_count" int not null default 0, "clicked_count" int not null default 0, "converted_count" int not null default 0, "unsubscribed_count" int not null default 0, "bounced_count" int not null default 0, "created_by" varchar(200) null, primary key ("id"));`);
    this.addSql(`create index "campaigns_tenant_status_idx" on "campaigns" ("tenant_id", "status", "created_at");`);
    this.addSql(`create index "campaigns_tenant_club_idx" on "campaigns" ("tenant_id", "club_id");`);
    this.addSql(`create index "campaigns_tenant_trigger_idx" on "campaigns" ("tenant_id", "trigger_event");`);

    this.addSql(`create table "campaign_deliveries" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "campaign_id" uuid not null, "customer_id" uuid not null, "run_key" varchar(100) not null, "channel" text not null, "status" text not null default 'PENDING', "provider_message_id" varchar(255) null, "error" text null, "sent_at" timestamptz null, "delivered_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "campaign_deliveries_status_idx" on "campaign_deliveries" ("tenant_id", "campaign_id", "status");`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_idem_uniq" unique ("campaign_id", "run_key", "customer_id", "channel");`);

    this.addSql(`create table "campaign_interactions" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "campaign_id" uuid not null, "customer_id" uuid not null, "delivery_id" uuid null, "type" text not null, "channel" text not null, "occurred_at" timestamptz not null, "metadata" jsonb null, "external_event_id" varchar(200) null, primary key ("id"));`);
    this.addSql(`create index "campaign_interactions_campaign_idx" on "campaign_interactions" ("tenant_id", "campaign_id", "type", "occurred_at");`);
    this.addSql(`create unique index "campaign_interactions_external_uniq" on "campaign_interactions" ("tenant_id", "external_event_id") where external_event_id is not null;`);

    this.addSql(`create table "segment_members" ("segment_id" uuid not null, "customer_id" uuid not null, "tenant_id" varchar(100) not null, "added_at" timestamptz not null default now(), primary key ("segment_id", "customer_id"));`);
    this.addSql(`create index "segment_members_customer_idx" on "segment_members" ("tenant_id", "customer_id");`);

    this.addSql(`create table "segment_membership_changes" ("id" bigserial primary key, "tenant_id" varchar(100) not null, "segment_id" uuid not null, "customer_id" uuid not null, "change" text not null, "cause" varchar(100) not null, "occurred_at" timestamptz not null default now());`);
    this.addSql(`create index "segment_changes_segment_idx" on "segment_membership_changes" ("tenant_id", "segment_id", "occurred_at");`);

    this.addSql(`create table "social_connections" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "club_id" varchar(100) null, "platform" text not null, "account_id" varchar(200) not null, "account_name" varchar(255) not null, "account_type" varchar(100) null, "is_active" boolean not null default true, "permissions" text[] not null default '{}', "access_token_encrypted" text null, "refresh_token_encrypted" text null, "token_expiry" timestamptz null, "last_used_at" timestamptz null, primary key ("id"));`);
    this.addSql(`alter table "social_connections" add constraint "social_connections_account_uniq" unique ("tenant_id", "platform", "account_id");`);

    this.addSql(`create table "social_posts" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "connection_id" uuid not null, "campaign_id" uuid null, "content" text not null, "media_urls" text[] not null default '{}', "hashtags" text[] not null default '{}', "link_url" text null, "status" text not null default 'DRAFT', "scheduled_at" timestamptz null, "published_at" timestamptz null, "platform_post_id" varchar(255) null, "platform_url" text null, "likes" int not null default 0, "comments" int not null default 0, "shares" int not null default 0, "reach" int not null default 0, "error" text null, primary key ("id"));`);
    this.addSql(`create index "social_posts_tenant_status_idx" on "social_posts" ("tenant_id", "status", "scheduled_at");`);

    this.addSql(`alter table "customers" add constraint "customers_status_check" check ("status" in ('ACTIVE', 'INACTIVE', 'MERGED', 'DELETED'));`);
    this.addSql(`alter table "customers" add constraint "customers_lifecycle_stage_check" check ("lifecycle_stage" in ('SUBSCRIBER', 'LEAD', 'CUSTOMER', 'MEMBER', 'ADVOCATE', 'CHURNED'));`);

    this.addSql(`alter table "activities" add constraint "activities_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "activities" add constraint "activities_category_check" check ("category" in ('MEMBERSHIP', 'BOOKING', 'COMMUNICATION', 'ENGAGEMENT', 'FINANCIAL', 'GOLF', 'MARKETING', 'SOCIAL', 'SYSTEM'));`);

    this.addSql(`alter table "journeys" add constraint "journeys_status_check" check ("status" in ('DRAFT', 'ACTIVE', 'PAUSED', 'ARCHIVED'));`);

    this.addSql(`alter table "journey_enrollments" add constraint "journey_enrollments_journey_id_foreign" foreign key ("journey_id") references "journeys" ("id") on delete cascade;`);
    this.addSql(`alter table "journey_enrollments" add constraint "journey_enrollments_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "journey_enrollments" add constraint "journey_enrollments_status_check" check ("status" in ('ACTIVE', 'COMPLETED', 'EXITED', 'FAILED'));`);

    this.addSql(`alter table "journey_steps" add constraint "journey_steps_journey_id_foreign" foreign key ("journey_id") references "journeys" ("id") on delete cascade;`);
    this.addSql(`alter table "journey_steps" add constraint "journey_steps_type_check" check ("type" in ('TRIGGER', 'SEND', 'WAIT', 'CONDITION', 'SPLIT', 'UPDATE', 'END'));`);

    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_enrollment_id_foreign" foreign key ("enrollment_id") references "journey_enrollments" ("id") on delete cascade;`);
    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_step_id_foreign" foreign key ("step_id") references "journey_steps" ("id") on delete cascade;`);
    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_status_check" check ("status" in ('PENDING', 'ACTIVE', 'COMPLETED', 'SKIPPED', 'FAILED'));`);

    this.addSql(`alter table "message_templates" add constraint "message_templates_channel_check" check ("channel" in ('EMAIL', 'SMS', 'PUSH', 'WHATSAPP', 'IN_APP', 'SOCIAL'));`);

    this.addSql(`alter table "notes" add constraint "notes_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "notes" add constraint "notes_type_check" check ("type" in ('GENERAL', 'SUPPORT', 'SALES', 'COMPLAINT'));`);

    this.addSql(`alter table "segments" add constraint "segments_type_check" check ("type" in ('STATIC', 'DYNAMIC', 'SMART'));`);

    this.addSql(`alter table "event_promotions" add constraint "event_promotions_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete set null;`);
    this.addSql(`alter table "event_promotions" add constraint "event_promotions_source_type_check" check ("source_type" in ('COMPETITION', 'CLUB_EVENT', 'SPECIAL'));`);

    this.addSql(`alter table "campaigns" add constraint "campaigns_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete set null;`);
    this.addSql(`alter table "campaigns" add constraint "campaigns_type_check" check ("type" in ('ONE_TIME', 'RECURRING', 'TRIGGERED', 'JOURNEY'));`);
    this.addSql(`alter table "campaigns" add constraint "campaigns_status_check" check ("status" in ('DRAFT', 'SCHEDULED', 'ACTIVE', 'PAUSED', 'COMPLETED', 'CANCELLED'));`);

    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_campaign_id_foreign" foreign key ("campaign_id") references "campaigns" ("id") on delete cascade;`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_channel_check" check ("channel" in ('EMAIL', 'SMS', 'PUSH', 'WHATSAPP', 'IN_APP', 'SOCIAL'));`);
    this.addSql(`alter table "campaign_deliveries" add constraint "campaign_deliveries_status_check" check ("status" in ('PENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED'));`);

    this.addSql(`alter table "campaign_interactions" add constraint "campaign_interactions_campaign_id_foreign" foreign key ("campaign_id") references "campaigns" ("id") on delete cascade;`);
    this.addSql(`alter table "campaign_interactions" add constraint "campaign_interactions_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "campaign_interactions" add constraint "campaign_interactions_delivery_id_foreign" foreign key ("delivery_id") references "campaign_deliveries" ("id") on delete set null;`);
    this.addSql(`alter table "campaign_interactions" add constraint "campaign_interactions_type_check" check ("type" in ('SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'CONVERTED', 'UNSUBSCRIBED', 'BOUNCED'));`);
    this.addSql(`alter table "campaign_interactions" add constraint "campaign_interactions_channel_check" check ("channel" in ('EMAIL', 'SMS', 'PUSH', 'WHATSAPP', 'IN_APP', 'SOCIAL'));`);

    this.addSql(`alter table "segment_members" add constraint "segment_members_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "segment_members" add constraint "segment_members_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "segment_membership_changes" add constraint "segment_membership_changes_segment_id_foreign" foreign key ("segment_id") references "segments" ("id") on delete cascade;`);
    this.addSql(`alter table "segment_membership_changes" add constraint "segment_membership_changes_customer_id_foreign" foreign key ("customer_id") references "customers" ("id") on delete cascade;`);
    this.addSql(`alter table "segment_membership_changes" add constraint "segment_membership_changes_change_check" check ("change" in ('ENTERED', 'EXITED'));`);

    this.addSql(`alter table "social_connections" add constraint "social_connections_platform_check" check ("platform" in ('FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'));`);

    this.addSql(`alter table "social_posts" add constraint "social_posts_connection_id_foreign" foreign key ("connection_id") references "social_connections" ("id") on delete cascade;`);
    this.addSql(`alter table "social_posts" add constraint "social_posts_campaign_id_foreign" foreign key ("campaign_id") references "campaigns" ("id") on delete set null;`);
    this.addSql(`alter table "social_posts" add constraint "social_posts_status_check" check ("status" in ('DRAFT', 'SCHEDULED', 'PUBLISHING', 'PUBLISHED', 'FAILED'));`);

    // Shared rate-limit counters (rate-limiter-flexible's RateLimiterPostgres layout), so that
    // several API instances enforce one limit per tenant.
    this.addSql(`create table "rate_limits" ("key" varchar(255) primary key, "points" int not null default 0, "expire" bigint);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "activities" drop constraint "activities_customer_id_foreign";`);
    this.addSql(`alter table "journey_enrollments" drop constraint "journey_enrollments_customer_id_foreign";`);
    this.addSql(`alter table "notes" drop constraint "notes_customer_id_foreign";`);
    this.addSql(`alter table "campaign_deliveries" drop constraint "campaign_deliveries_customer_id_foreign";`);
    this.addSql(`alter table "campaign_interactions" drop constraint "campaign_interactions_customer_id_foreign";`);
    this.addSql(`alter table "segment_members" drop constraint "segment_members_customer_id_foreign";`);
    this.addSql(`alter table "segment_membership_changes" drop constraint "segment_membership_changes_customer_id_foreign";`);
    this.addSql(`alter table "journey_enrollments" drop constraint "journey_enrollments_journey_id_foreign";`);
    this.addSql(`alter table "journey_steps" drop constraint "journey_steps_journey_id_foreign";`);
    this.addSql(`alter table "journey_enrollment_steps" drop constraint "journey_enrollment_steps_enrollment_id_foreign";`);
    this.addSql(`alter table "journey_enrollment_steps" drop constraint "journey_enrollment_steps_step_id_foreign";`);
    this.addSql(`alter table "event_promotions" drop constraint "event_promotions_segment_id_foreign";`);
    this.addSql(`alter table "campaigns" drop constraint "campaigns_segment_id_foreign";`);
    this.addSql(`alter table "segment_members" drop constraint "segment_members_segment_id_foreign";`);
    this.addSql(`alter table "segment_membership_changes" drop constraint "segment_membership_changes_segment_id_foreign";`);
    this.addSql(`alter table "campaign_deliveries" drop constraint "campaign_deliveries_campaign_id_foreign";`);
    this.addSql(`alter table "campaign_interactions" drop constraint "campaign_interactions_campaign_id_foreign";`);
    this.addSql(`alter table "social_posts" drop constraint "social_posts_campaign_id_foreign";`);
    this.addSql(`alter table "campaign_interactions" drop constraint "campaign_interactions_delivery_id_foreign";`);
    this.addSql(`alter table "social_posts" drop constraint "social_posts_connection_id_foreign";`);

    this.addSql(`drop table if exists "clubs" cascade;`);
    this.addSql(`drop table if exists "customers" cascade;`);
    this.addSql(`drop table if exists "activities" cascade;`);
    this.addSql(`drop table if exists "journeys" cascade;`);
    this.addSql(`drop table if exists "journey_enrollments" cascade;`);
    this.addSql(`drop table if exists "journey_steps" cascade;`);
    this.addSql(`drop table if exists "journey_enrollment_steps" cascade;`);
    this.addSql(`drop table if exists "message_templates" cascade;`);
    this.addSql(`drop table if exists "notes" cascade;`);
    this.addSql(`drop table if exists "segments" cascade;`);
    this.addSql(`drop table if exists "event_promotions" cascade;`);
    this.addSql(`drop table if exists "campaigns" cascade;`);
    this.addSql(`drop table if exists "campaign_deliveries" cascade;`);
    this.addSql(`drop table if exists "campaign_interactions" cascade;`);
    this.addSql(`drop table if exists "segment_members" cascade;`);
    this.addSql(`drop table if exists "segment_membership_changes" cascade;`);
    this.addSql(`drop table if exists "social_connections" cascade;`);
    this.addSql(`drop table if exists "social_posts" cascade;`);
    this.addSql(`drop table if exists "rate_limits";`);
  }

}
