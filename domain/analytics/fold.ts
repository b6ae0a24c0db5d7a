import type { EntityManager } from '@mikro-orm/postgresql';

// Each backend adds to rollup rows of its own (`writer` = its pid, see the analytics migration),
// and pools open new connections all the time, so a key gathers rows. Folding moves a tenant's
// rows into writer 0 (never a backend pid): rows a writer holds in a transaction still open are
// skipped (SKIP LOCKED: the fold never waits, so it cannot deadlock with writers), and a writer
// whose row went simply adds a new one. Sums are unchanged. Run hourly for every tenant with rows
// to fold (the `analytics-rollup-fold` schedule, workflows/analytics-fold.ts), so a key never
// gathers more than about an hour of connections.
const ROLLUPS: { table: string; key: string[]; measures: string[] }[] = [
  {
    table: 'analytics_customer_totals',
    key: ['tenant_id', 'status', 'lifecycle_stage'],
    measures: ['customers', 'engagement_sum', 'engagement_count', 'churn_risk_sum', 'churn_risk_count', 'at_risk'],
  },
  { table: 'analytics_activity_hours', key: ['tenant_id', 'hour'], measures: ['activities'] },
  {
    table: 'analytics_delivery_hours',
    key: ['tenant_id', 'hour', 'campaign_id', 'channel'],
    measures: ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'converted'],
  },
];

/** Folds a tenant's rollup rows into one per key; returns how many rows it folded. */
export async function foldRollups(em: EntityManager, tenantId: string): Promise<number> {
  let folded = 0;
  for (const { table, key, measures } of ROLLUPS) {
    const [row] = await em.execute<{ n: number }[]>(
      `with moved as (
         delete from ${table} where ctid in (select ctid from ${table} where tenant_id = ? and writer <> 0 for update skip locked)
         returning *
       ), added as (
         insert into ${table} as t (${[...key, 'writer', ...measures].join(', ')})
         select ${key.join(', ')}, 0, ${measures.map((m) => `sum(${m})`).join(', ')} from moved group by ${key.join(', ')} order by ${key.join(', ')}
         on conflict (${[...key, 'writer'].join(', ')}) do update set ${measures.map((m) => `${m} = t.${m} + excluded.${m}`).join(', ')}
       )
       select count(*)::int as n from moved`,
      [tenantId],
    );
    folded += row?.n ?? 0;
  }
  return folded;
}

/** Tenants (after `after`, in order) that have rollup rows not yet folded. */
export async function tenantsToFold(em: EntityManager, after: string, limit: number): Promise<string[]> {
  const rows = await em.execute<{ tenant_id: string }[]>(
    `select tenant_id from (${ROLLUPS.map(({ table }) => `select distinct tenant_id from ${table} where writer <> 0 and tenant_id > ?`).join(' union ')}) t
      order by tenant_id limit ?`,
    [...ROLLUPS.map(() => after), limit],
  );
  return rows.map((r) => r.tenant_id);
}
