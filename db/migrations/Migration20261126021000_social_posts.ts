import { Migration } from '@mikro-orm/migrations';

/**
 * Social posts publish at most once: each call to a platform is recorded first (attempt id and
 * start) in a committed row, so a retry after a lost answer asks the platform what that attempt did
 * before trying again. A campaign has at most one post per connection, and posts made for a
 * business key (a promotion's announcement) one per key and connection, so reruns create nothing
 * twice. metrics_updated_at: when the metrics workflow last read the post's numbers.
 */
export class Migration20261126021000_social_posts extends Migration {

  override name = 'Migration20261126021000_social_posts';

  override up(): void | Promise<void> {
    this.addSql(`alter table "social_posts" add "publish_attempt_id" uuid null, add "publish_attempt_at" timestamptz null, add "source_key" varchar(200) null, add "metrics_updated_at" timestamptz null;`);
    this.addSql(`create unique index "social_posts_campaign_connection_uniq" on "social_posts" ("tenant_id", "campaign_id", "connection_id") where "campaign_id" is not null;`);
    this.addSql(`create unique index "social_posts_source_key_uniq" on "social_posts" ("tenant_id", "source_key", "connection_id") where "source_key" is not null;`);
    this.addSql(`create index "social_posts_published_idx" on "social_posts" ("connection_id", "published_at") where "status" = 'PUBLISHED';`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "social_posts_published_idx";`);
    this.addSql(`drop index "social_posts_source_key_uniq";`);
    this.addSql(`drop index "social_posts_campaign_connection_uniq";`);
    this.addSql(`alter table "social_posts" drop column "publish_attempt_id", drop column "publish_attempt_at", drop column "source_key", drop column "metrics_updated_at";`);
  }

}
