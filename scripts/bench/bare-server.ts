// The baselines of the API benchmarks: plain Hono + pg with no auth, rate limit or ORM, selecting
// the page GET /customers answers (the 25 newest live customers of a tenant) without counting, or
// one `select 1` (the floor under any report's round trip: HTTP, a pooled connection, a query), or
// storing a batch of upstream events (the body POST /events takes) in one multi-row INSERT.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const app = new Hono();
const WHERE = `tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED'`;

app.get('/customers', async (c) => {
  const tenant = c.req.query('tenantId')!;
  const take = Number(c.req.query('take') ?? 25);
  const rows = await pool.query(`select * from customers where ${WHERE} order by id desc limit $2`, [tenant, take + 1]);
  return c.json({ data: rows.rows.slice(0, take), meta: { skip: 0, take, hasMore: rows.rows.length > take } });
});

// The same activities POST /events stores for a batch of events naming customers by email: one
// INSERT ... SELECT joining the tenant's live customers, skipping events already stored.
app.post('/events', async (c) => {
  const tenant = c.req.query('tenantId')!;
  const events = await c.req.json();
  const rows = await pool.query(
    `insert into activities (id, tenant_id, customer_id, type, category, title, description, occurred_at, metadata, source_service, source_event_id)
     select uuidv7(), $1, cu.id, e.type, e.category, e.title, e.description, e."occurredAt", e.metadata, e."sourceService", e."sourceEventId"
       from json_to_recordset($2::json) as e(type text, category text, title text, description text, "occurredAt" timestamptz, metadata jsonb,
                                             "sourceService" text, "sourceEventId" text, customer json)
       join customers cu on cu.tenant_id = $1 and cu.email = e.customer->>'email' and cu.status <> 'MERGED' and cu.status <> 'DELETED'
     on conflict (tenant_id, source_service, source_event_id) where source_service is not null and source_event_id is not null do nothing`,
    [tenant, JSON.stringify(events)],
  );
  return c.json({ data: { accepted: rows.rowCount } });
});

app.get('/select1', async (c) => c.json({ data: (await pool.query('select 1 as one')).rows[0] }));

serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, () => process.stdout.write('ready\n'));
