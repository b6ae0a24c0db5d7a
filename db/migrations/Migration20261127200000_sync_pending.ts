import { Migration } from '@mikro-orm/migrations';

// A sync batch whose answer from the Messaging service was lost: sent again, as it was, with its
// key, before the sync goes on (activities/segments.ts).
export class Migration20261127200000_sync_pending extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "segments" add column "sync_pending" jsonb null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "segments" drop column "sync_pending";`);
  }
}
