import { Context } from '@temporalio/activity';
import { Segment } from '../db/entities/index.js';
import { liveCustomer } from '../db/sql.js';
import { evaluateMembership } from '../domain/segments/membership.js';
import { OUTBOUND_ACTIVITY_TYPES } from '../domain/reactions.js';
import type { ActivityDeps } from './index.js';

const SCORING_BATCH = 5000;
const CUSTOMER_ACTION = `a.category <> 'SYSTEM' and a.type <> all('{${OUTBOUND_ACTIVITY_TYPES.join(',')}}'::text[])`;

// Scores, RFM-style, from each live customer's timeline: what the customer did (SYSTEM activities and
// the platform's own outbound campaign messages excluded):
//   R = max(0, 100 − 100 × days since the last activity (or since joining) / 90)
//   F = min(100, 100 × ln(1 + activities in the last 90 days) / ln(31))      (30 in 90 days = 100)
//   M = min(100, 100 × ln(1 + FINANCIAL metadata.amount in the last 365 days) / ln(10001))
//   engagementScore = round(0.5 R + 0.35 F + 0.15 M)
//   churnRiskScore  = round(100 − (0.7 R + 0.3 F))
//   lifetimeValue   = round(sum of FINANCIAL metadata.amount, all time)
const SCORE_BATCH_SQL = `
  with batch as (
    select id, created_at from customers
     where tenant_id = ? and ${liveCustomer()} and id > ?::uuid
     order by id limit ?
  ), stats as (
    select b.id,
           extract(epoch from now() - coalesce(max(a.occurred_at) filter (where ${CUSTOMER_ACTION}), b.created_at)) / 86400 as idle_days,
           count(a.id) filter (where ${CUSTOMER_ACTION} and a.occurred_at >= now() - interval '90 days') as recent,
           coalesce(sum(case when a.category = 'FINANCIAL' and jsonb_typeof(a.metadata -> 'amount') = 'number'
                             and a.occurred_at >= now() - interval '365 days' then (a.metadata ->> 'amount')::numeric end), 0) as spend_year,
           coalesce(sum(case when a.category = 'FINANCIAL' and jsonb_typeof(a.metadata -> 'amount') = 'number'
                             then (a.metadata ->> 'amount')::numeric end), 0) as spend_all
      from batch b left join activities a on a.tenant_id = ? and a.customer_id = b.id
     group by b.id, b.created_at
  ), rfm as (
    select id, spend_all,
           least(100, greatest(0, 100 - idle_days * 100 / 90)) as r,
           least(100, 100 * ln(1 + recent) / ln(31)) as f,
           least(100, 100 * ln(1 + greatest(spend_year, 0)) / ln(10001)) as m
      from stats
  ), scored as (
    update customers c
       set engagement_score = round(0.5 * r + 0.35 * f + 0.15 * m),
           churn_risk_score = least(100, greatest(0, round(100 - (0.7 * r + 0.3 * f)))),
           lifetime_value = least(2147483647, greatest(-2147483648, round(spend_all))),
           updated_at = now()
      from rfm where c.id = rfm.id
    returning c.id
  )
  select count(*)::int as n, max(id::text) as last from scored`;

export function scoringActivities({ orm }: ActivityDeps) {
  return {
    async listTenants(): Promise<string[]> {
      const rows = await orm.em.fork().execute<{ tenant_id: string }[]>(
        `select distinct tenant_id from customers where ${liveCustomer()} order by tenant_id`,
      );
      return rows.map((r) => r.tenant_id);
    },

    /** Scores every live customer of a tenant in batches; a retry resumes after the last batch. */
    async computeScores({ tenantId }: { tenantId: string }): Promise<{ scored: number }> {
      const ctx = Context.current();
      const resumed = ctx.info.heartbeatDetails as { after: string; scored: number } | undefined;
      let after = resumed?.after ?? '00000000-0000-0000-0000-000000000000';
      let scored = resumed?.scored ?? 0;
      const em = orm.em.fork();
      for (;;) {
        const [batch] = await em.execute<{ n: number; last: string | null }[]>(SCORE_BATCH_SQL, [tenantId, after, SCORING_BATCH, tenantId]);
        if (!batch?.n || !batch.last) break;
        scored += batch.n;
        after = batch.last;
        ctx.heartbeat({ after, scored });
      }
      return { scored };
    },

    /** SMART segments over scores follow each scoring run. */
    async refreshSmartSegments({ tenantId }: { tenantId: string }): Promise<number> {
      const segments = await orm.em.fork().find(Segment, { tenantId, type: 'SMART', isActive: true });
      for (const segment of segments) {
        await orm.em.fork().transactional((em) => evaluateMembership(em, segment, 'scoring'));
        Context.current().heartbeat();
      }
      return segments.length;
    },
  };
}
