import { Context } from '@temporalio/activity';
import { foldRollups, tenantsToFold } from '../domain/analytics/fold.js';
import type { ActivityDeps } from './index.js';

const TENANTS_PAGE = 500;

export function analyticsActivities({ orm }: ActivityDeps) {
  return {
    /** Folds the rollup rows of every tenant that has some; a retry resumes after the last tenant folded. */
    async foldAnalyticsRollups(): Promise<{ tenants: number; rows: number }> {
      const ctx = Context.current();
      const resumed = ctx.info.heartbeatDetails as { after: string; tenants: number; rows: number } | undefined;
      let { after, tenants, rows } = resumed ?? { after: '', tenants: 0, rows: 0 };
      const em = orm.em.fork();
      for (;;) {
        const page = await tenantsToFold(em, after, TENANTS_PAGE);
        for (const tenantId of page) {
          rows += await foldRollups(em, tenantId);
          tenants++;
          after = tenantId;
          ctx.heartbeat({ after, tenants, rows });
        }
        if (page.length < TENANTS_PAGE) return { tenants, rows };
      }
    },
  };
}
