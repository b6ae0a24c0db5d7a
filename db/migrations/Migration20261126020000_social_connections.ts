import { Migration } from '@mikro-orm/migrations';

/**
 * Social connections: why a connection went inactive (`status_reason`, shown in the API), when its
 * tokens were last refreshed (concurrent refreshers refresh once), and the
 * pending OAuth authorisations (`social_oauth_states`): one row per `state` handed out, consumed by
 * the DELETE that completes it, holding the PKCE code_verifier (encrypted) server-side.
 */
export class Migration20261126020000_social_connections extends Migration {

  override name = 'Migration20261126020000_social_connections';

  override up(): void | Promise<void> {
    this.addSql(`alter table "social_connections" add "status_reason" text null, add "tokens_refreshed_at" timestamptz null;`);
    this.addSql(`create table "social_oauth_states" ("id" uuid not null default gen_random_uuid(), "tenant_id" varchar(100) not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "club_id" varchar(100) not null, "platform" text not null, "redirect_uri" text not null, "code_verifier_encrypted" text null, "expires_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "social_oauth_states_expires_at_idx" on "social_oauth_states" ("expires_at");`);
    this.addSql(`alter table "social_oauth_states" add constraint "social_oauth_states_platform_check" check ("platform" in ('FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "social_oauth_states" cascade;`);
    this.addSql(`alter table "social_connections" drop column "status_reason", drop column "tokens_refreshed_at";`);
  }

}
