import { Migration } from '@mikro-orm/migrations';

// Every upstream event moves its customer's `last_activity_at`. With that column indexed, each
// such update wrote a new version of the row and a new entry in all ten of the table's indexes (a
// batch of 1,000 events spent ~170 ms on it). Unindexed, and with room left on each page for the
// new version, the update is HOT: it stays on the row's page and touches no index. The index only
// served `lastActivityAt` criteria of refreshes, which now read the tenant's live profiles as most
// criteria do. The fill factor applies to pages written from now on.
export class Migration20261126110000_hot_last_activity extends Migration {
  override async up(): Promise<void> {
    this.addSql('drop index if exists "customers_tenant_last_activity_idx";');
    this.addSql('alter table "customers" set (fillfactor = 90);');
  }

  override async down(): Promise<void> {
    this.addSql('alter table "customers" reset (fillfactor);');
    this.addSql('create index "customers_tenant_last_activity_idx" on "customers" ("tenant_id", "last_activity_at");');
  }
}
