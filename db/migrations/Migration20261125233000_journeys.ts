import { Migration } from '@mikro-orm/migrations';

/**
 * Journeys: published versions (running enrolments keep the graph they started on), enrolments
 * that are idempotent per upstream key and numbered per customer (re-entry), per-step records that
 * outlive an edited graph, and SEND deliveries that name their journey step.
 */
export class Migration20261125233000_journeys extends Migration {

  override name = 'Migration20261125233000_journeys';

  override up(): void | Promise<void> {
    this.addSql(`alter table "journeys" add "current_version" int not null default 0, add "campaign_id" uuid null;`);

    this.addSql(`create table "journey_versions" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "journey_id" uuid not null, "version" int not null, "trigger_type" varchar(100) not null, "trigger_config" jsonb null, "allow_reentry" boolean not null, "timezone" varchar(64) null, "steps" jsonb not null, "event_types" text[] not null default '{}', primary key ("id"));`);
    this.addSql(`alter table "journey_versions" add constraint "journey_versions_tenant_id_uniq" unique ("tenant_id", "id");`);
    this.addSql(`alter table "journey_versions" add constraint "journey_versions_version_uniq" unique ("journey_id", "version");`);
    this.addSql(`alter table "journey_versions" add constraint "journey_versions_journey_id_foreign" foreign key ("tenant_id", "journey_id") references "journeys" ("tenant_id", "id") on delete cascade;`);

    this.addSql(`alter table "journey_enrollments" add "updated_at" timestamptz not null default now(), add "version" int not null default 1, add "sequence" int not null default 1, add "idempotency_key" varchar(300) null, add "current_step_id" uuid null, add "exit_reason" text null;`);
    this.addSql(`alter table "journey_enrollments" add constraint "journey_enrollments_sequence_uniq" unique ("journey_id", "customer_id", "sequence");`);
    this.addSql(`alter table "journey_enrollments" add constraint "journey_enrollments_idem_uniq" unique ("journey_id", "idempotency_key");`);

    // Step records keep what the step was: the step may be edited or deleted in a later version.
    this.addSql(`alter table "journey_enrollment_steps" drop constraint "journey_enrollment_steps_step_id_foreign";`);
    this.addSql(`alter table "journey_enrollment_steps" add "step_number" int null, add "step_name" varchar(255) null, add "step_type" text null, add "outcome" varchar(50) null, add "visits" int not null default 0;`);
    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_step_type_check" check ("step_type" in ('TRIGGER', 'SEND', 'WAIT', 'CONDITION', 'SPLIT', 'UPDATE', 'END'));`);

    this.addSql(`alter table "campaign_deliveries" add "journey_enrollment_id" uuid null, add "journey_step_id" uuid null;`);
    this.addSql(`create index "campaign_deliveries_journey_step_idx" on "campaign_deliveries" ("tenant_id", "journey_step_id") where journey_step_id is not null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "campaign_deliveries_journey_step_idx";`);
    this.addSql(`alter table "campaign_deliveries" drop column "journey_enrollment_id", drop column "journey_step_id";`);
    this.addSql(`delete from "journey_enrollment_steps" s where not exists (select 1 from "journey_steps" j where j.tenant_id = s.tenant_id and j.id = s.step_id);`);
    this.addSql(`alter table "journey_enrollment_steps" drop constraint "journey_enrollment_steps_step_type_check";`);
    this.addSql(`alter table "journey_enrollment_steps" drop column "step_number", drop column "step_name", drop column "step_type", drop column "outcome", drop column "visits";`);
    this.addSql(`alter table "journey_enrollment_steps" add constraint "journey_enrollment_steps_step_id_foreign" foreign key ("tenant_id", "step_id") references "journey_steps" ("tenant_id", "id") on delete cascade;`);
    this.addSql(`alter table "journey_enrollments" drop constraint "journey_enrollments_idem_uniq";`);
    this.addSql(`alter table "journey_enrollments" drop constraint "journey_enrollments_sequence_uniq";`);
    this.addSql(`alter table "journey_enrollments" drop column "updated_at", drop column "version", drop column "sequence", drop column "idempotency_key", drop column "current_step_id", drop column "exit_reason";`);
    this.addSql(`drop table if exists "journey_versions" cascade;`);
    this.addSql(`alter table "journeys" drop column "current_version", drop column "campaign_id";`);
  }

}
