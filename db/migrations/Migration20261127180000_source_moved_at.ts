import { Migration } from '@mikro-orm/migrations';

// When a source's start last moved: a promotion's reminder whose time came before that (its event
// was elsewhere then) is not sent after the fact. Null: never moved since first recorded.
export class Migration20261127180000_source_moved_at extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "promotion_sources" add column "starts_at_changed_at" timestamptz null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "promotion_sources" drop column "starts_at_changed_at";`);
  }
}
