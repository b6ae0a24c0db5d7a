import type { Orm } from '../db/orm.js';
import type { Config } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import { analyticsActivities } from './analytics.js';
import { campaignActivities } from './campaigns.js';
import { journeyActivities } from './journeys.js';
import { promotionActivities } from './promotions.js';
import { scoringActivities } from './scoring.js';
import { segmentActivities } from './segments.js';
import { socialConnectionActivities } from './social-connections.js';
import { socialMetricsActivities } from './social-metrics.js';
import { socialPostActivities } from './social-posts.js';

export interface ActivityDeps {
  orm: Orm;
  config: Config;
  log: Logger;
}

// Activities are built from their dependencies (database, HTTP clients) once per worker, like the
// samples' `createActivities(db)`: thin functions, one concern a file, idempotent under retry.
export function createActivities(deps: ActivityDeps) {
  const campaigns = campaignActivities(deps);
  return {
    ...segmentActivities(deps),
    ...scoringActivities(deps),
    ...campaigns,
    ...socialPostActivities(deps),
    ...socialMetricsActivities(deps),
    ...promotionActivities(deps),
    // A journey's SEND steps go through the campaigns' sender (one channel pool and send rate).
    ...journeyActivities(deps, campaigns),
    ...socialConnectionActivities(deps),
    ...analyticsActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
