import { Migration20261124020332_initial } from './Migration20261124020332_initial.js';
import { Migration20261124025504_segments } from './Migration20261124025504_segments.js';
import { Migration20261125174940_tenant_references } from './Migration20261125174940_tenant_references.js';
import { Migration20261125202207_campaigns } from './Migration20261125202207_campaigns.js';
import { Migration20261125202912_tracking } from './Migration20261125202912_tracking.js';
import { Migration20261125233000_journeys } from './Migration20261125233000_journeys.js';
import { Migration20261125234500_outbox_retry } from './Migration20261125234500_outbox_retry.js';
import { Migration20261126020000_social_connections } from './Migration20261126020000_social_connections.js';
import { Migration20261126021000_social_posts } from './Migration20261126021000_social_posts.js';
import { Migration20261126022000_promotions } from './Migration20261126022000_promotions.js';
import { Migration20261126023000_analytics } from './Migration20261126023000_analytics.js';
import { Migration20261126074500_synced_members_cascade } from './Migration20261126074500_synced_members_cascade.js';
import { Migration20261126081500_membership_references } from './Migration20261126081500_membership_references.js';
import { Migration20261126110000_hot_last_activity } from './Migration20261126110000_hot_last_activity.js';
import { Migration20261126160000_membership_segment_lookups } from './Migration20261126160000_membership_segment_lookups.js';
import { Migration20261126220000_segment_reference_locks } from './Migration20261126220000_segment_reference_locks.js';
import { Migration20261126234500_segment_count_writers } from './Migration20261126234500_segment_count_writers.js';
import { Migration20261126235500_count_delta_checks } from './Migration20261126235500_count_delta_checks.js';
import { Migration20261127150000_members_by_customer } from './Migration20261127150000_members_by_customer.js';
import { Migration20261127180000_source_moved_at } from './Migration20261127180000_source_moved_at.js';
import { Migration20261127190000_publish_handle } from './Migration20261127190000_publish_handle.js';
import { Migration20261127123651_segment_reevaluations } from './Migration20261127123651_segment_reevaluations.js';

// In order of application. `npm run migration:create` writes new files; list them here.
export const migrations = [
  { name: 'Migration20261124020332_initial', class: Migration20261124020332_initial },
  { name: 'Migration20261124025504_segments', class: Migration20261124025504_segments },
  { name: 'Migration20261125174940_tenant_references', class: Migration20261125174940_tenant_references },
  { name: 'Migration20261125202207_campaigns', class: Migration20261125202207_campaigns },
  { name: 'Migration20261125202912_tracking', class: Migration20261125202912_tracking },
  { name: 'Migration20261125233000_journeys', class: Migration20261125233000_journeys },
  { name: 'Migration20261125234500_outbox_retry', class: Migration20261125234500_outbox_retry },
  { name: 'Migration20261126020000_social_connections', class: Migration20261126020000_social_connections },
  { name: 'Migration20261126021000_social_posts', class: Migration20261126021000_social_posts },
  { name: 'Migration20261126022000_promotions', class: Migration20261126022000_promotions },
  { name: 'Migration20261126023000_analytics', class: Migration20261126023000_analytics },
  { name: 'Migration20261126074500_synced_members_cascade', class: Migration20261126074500_synced_members_cascade },
  { name: 'Migration20261126081500_membership_references', class: Migration20261126081500_membership_references },
  { name: 'Migration20261126110000_hot_last_activity', class: Migration20261126110000_hot_last_activity },
  { name: 'Migration20261126160000_membership_segment_lookups', class: Migration20261126160000_membership_segment_lookups },
  { name: 'Migration20261126220000_segment_reference_locks', class: Migration20261126220000_segment_reference_locks },
  { name: 'Migration20261126234500_segment_count_writers', class: Migration20261126234500_segment_count_writers },
  { name: 'Migration20261126235500_count_delta_checks', class: Migration20261126235500_count_delta_checks },
  { name: 'Migration20261127123651_segment_reevaluations', class: Migration20261127123651_segment_reevaluations },
  { name: 'Migration20261127150000_members_by_customer', class: Migration20261127150000_members_by_customer },
  { name: 'Migration20261127180000_source_moved_at', class: Migration20261127180000_source_moved_at },
  { name: 'Migration20261127190000_publish_handle', class: Migration20261127190000_publish_handle },
];
