import { Migration } from '@mikro-orm/migrations';

// The upload a platform named for a publish attempt before the post was public (TikTok's publish_id,
// Instagram's container): a retry asks after it rather than posting again.
export class Migration20261127190000_publish_handle extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "social_posts" add column "publish_handle" varchar(200) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "social_posts" drop column "publish_handle";`);
  }
}
