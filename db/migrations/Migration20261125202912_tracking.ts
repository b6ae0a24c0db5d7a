import { Migration } from '@mikro-orm/migrations';

/**
 * Campaign tracking and statistics: the indexes that keep conversions (which campaigns an
 * upstream event converts for, the customer's recent clicks) and the interactions list cheap.
 */
export class Migration20261125202912_tracking extends Migration {

  override name = 'Migration20261125202912_tracking';

  override up(): void | Promise<void> {
    this.addSql(`create index "campaigns_tenant_conversion_idx" on "campaigns" ("tenant_id", "conversion_event");`);
    this.addSql(`create index "campaign_interactions_recent_idx" on "campaign_interactions" ("tenant_id", "campaign_id", "occurred_at");`);
    this.addSql(`create index "campaign_interactions_customer_idx" on "campaign_interactions" ("tenant_id", "customer_id", "type", "occurred_at");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "campaign_interactions_customer_idx";`);
    this.addSql(`drop index "campaign_interactions_recent_idx";`);
    this.addSql(`drop index "campaigns_tenant_conversion_idx";`);
  }

}
