import { Migration } from '@mikro-orm/migrations';

// Tables whose (tenant_id, id) other tenant-owned rows reference.
const REFERENCED = [
  'customers', 'segments', 'campaigns', 'campaign_deliveries', 'journeys', 'journey_steps', 'journey_enrollments', 'social_connections',
];

// Every reference between tenant-owned rows, with the ON DELETE rule it had as a single-column key.
// A nullable reference keeps MATCH SIMPLE (a null ref is allowed) and `set null` clears only the
// reference column: tenant_id is not null and stays.
const REFERENCES: [table: string, column: string, referenced: string, onDelete: 'cascade' | 'set null', onUpdate?: 'cascade'][] = [
  ['activities', 'customer_id', 'customers', 'cascade'],
  ['notes', 'customer_id', 'customers', 'cascade'],
  ['segment_members', 'segment_id', 'segments', 'cascade', 'cascade'],
  ['segment_members', 'customer_id', 'customers', 'cascade', 'cascade'],
  ['segment_membership_changes', 'segment_id', 'segments', 'cascade'],
  ['segment_membership_changes', 'customer_id', 'customers', 'cascade'],
  ['segment_synced_members', 'segment_id', 'segments', 'cascade'],
  ['campaigns', 'segment_id', 'segments', 'set null'],
  ['campaign_deliveries', 'campaign_id', 'campaigns', 'cascade'],
  ['campaign_deliveries', 'customer_id', 'customers', 'cascade'],
  ['campaign_interactions', 'campaign_id', 'campaigns', 'cascade'],
  ['campaign_interactions', 'customer_id', 'customers', 'cascade'],
  ['campaign_interactions', 'delivery_id', 'campaign_deliveries', 'set null'],
  ['journey_steps', 'journey_id', 'journeys', 'cascade'],
  ['journey_enrollments', 'journey_id', 'journeys', 'cascade'],
  ['journey_enrollments', 'customer_id', 'customers', 'cascade'],
  ['journey_enrollment_steps', 'enrollment_id', 'journey_enrollments', 'cascade'],
  ['journey_enrollment_steps', 'step_id', 'journey_steps', 'cascade'],
  ['event_promotions', 'segment_id', 'segments', 'set null'],
  ['social_posts', 'connection_id', 'social_connections', 'cascade'],
  ['social_posts', 'campaign_id', 'campaigns', 'set null'],
];

/** References carry the tenant: a row of one tenant can never point at another tenant's row. */
export class Migration20261125174940_tenant_references extends Migration {

  override name = 'Migration20261125174940_tenant_references';

  override up(): void | Promise<void> {
    for (const table of REFERENCED) {
      this.addSql(`alter table "${table}" add constraint "${table}_tenant_id_uniq" unique ("tenant_id", "id");`);
    }
    for (const [table, column, referenced, onDelete, onUpdate] of REFERENCES) {
      const name = `${table}_${column}_foreign`;
      const del = onDelete === 'set null' ? `set null ("${column}")` : onDelete;
      this.addSql(`alter table "${table}" drop constraint "${name}";`);
      this.addSql(
        `alter table "${table}" add constraint "${name}" foreign key ("tenant_id", "${column}") references "${referenced}" ("tenant_id", "id")` +
        `${onUpdate ? ` on update ${onUpdate}` : ''} on delete ${del};`,
      );
    }
  }

  override down(): void | Promise<void> {
    for (const [table, column, referenced, onDelete, onUpdate] of REFERENCES) {
      const name = `${table}_${column}_foreign`;
      this.addSql(`alter table "${table}" drop constraint "${name}";`);
      this.addSql(
        `alter table "${table}" add constraint "${name}" foreign key ("${column}") references "${referenced}" ("id")` +
        `${onUpdate ? ` on update ${onUpdate}` : ''} on delete ${onDelete};`,
      );
    }
    for (const table of REFERENCED) this.addSql(`alter table "${table}" drop constraint "${table}_tenant_id_uniq";`);
  }

}
