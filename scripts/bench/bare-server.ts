// The baselines of the read benchmarks: plain Hono + pg with no auth, rate limit or ORM, selecting
// the page GET /customers answers (the 25 newest live customers of a tenant) without counting, or
// one `select 1` (the floor under any report's round trip: HTTP, a pooled connection, a query).
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

app.get('/select1', async (c) => c.json({ data: (await pool.query('select 1 as one')).rows[0] }));

serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, () => process.stdout.write('ready\n'));
