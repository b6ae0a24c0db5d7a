import type { Orm } from '../db/orm.js';
import type { Config } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';

export interface ActivityDeps {
  orm: Orm;
  config: Config;
  log: Logger;
}

// Activities are built from their dependencies (database, HTTP clients) once per worker, like the
// samples' `createActivities(db)`: thin functions, one concern each, idempotent under retry.
export function createActivities(_deps: ActivityDeps) {
  return {};
}

export type Activities = ReturnType<typeof createActivities>;
