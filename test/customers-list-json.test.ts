import { buildSchema, getNamedType, type GraphQLObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openOrm } from '../db/orm.js';
import type { ServiceContext } from '../domain/context.js';
import { Customer } from '../db/entities/index.js';
import { customersConnection, listCustomersPage } from '../domain/customers/customers.js';
import { typeDefs } from '../api/graphql/schema.js';
import { newTenant, startTestApi, testConfig, token, type TestApi } from './support/api.js';
import { selection } from './support/graphql.js';

// GET /customers answers the columns PostgreSQL renders (CUSTOMER_VIEW); GET /customers/:id goes through
// customerView and the Customer schema. A customer must read the same either way.
let api: TestApi;
let auth: string;
let orm: Awaited<ReturnType<typeof openOrm>>;
const tenant = newTenant();
beforeAll(async () => {
  api = await startTestApi();
  auth = await token(tenant);
  orm = await openOrm(testConfig().DATABASE_URL!);
});
afterAll(async () => {
  await orm?.close();
  await api?.close();
});

const create = async (body: object) => {
  const res = await api.call('POST', '/api/v1/customers', { auth, body });
  expect(res.status).toBe(201);
  return res.body.data.id as string;
};

describe('the customer list as PostgreSQL renders it', () => {
  it('answers every customer as GET /customers/:id does: nulls, names, numbers, dates and escapes', async () => {
    const ids = [
      await create({
        email: 'full@example.com', phoneNumber: '+27821110000', authUserId: 'auth|1', firstName: 'Zoë "Zee"', lastName: 'O\\Brien\ttab',
        lifecycleStage: 'MEMBER', membershipTier: 'Gold 🏌', membershipStatus: 'active', handicap: 12.3, homeClubId: 'club_1',
        emailOptIn: true, smsOptIn: true, pushOptIn: true,
      }),
      await create({ phoneNumber: '+27821110001' }),
      await create({ email: 'first-only@example.com', firstName: 'Ann', handicap: -2.5 }),
      await create({ email: 'last-only@example.com', lastName: 'Smith', handicap: 0.1 }),
      await create({ email: 'control@example.com', firstName: 'line\nbreak \u0001 \u2028' }),
    ];
    // What only the platform writes: scores, activity and merge times with microseconds (pg keeps
    // milliseconds, truncated), a merged profile.
    await orm.em.fork().execute(
      `update customers set engagement_score = 87, churn_risk_score = 3, lifetime_value = 123456,
              last_activity_at = '2026-03-04 05:06:07.891999+00', created_at = '1999-12-31 23:59:59.999999+02',
              email_bounced_at = '2026-02-03 04:05:06.789+00'
        where id = ?`,
      [ids[0]],
    );
    await orm.em.fork().execute(
      `update customers set status = 'MERGED', merged_into_id = ?, merged_at = '2026-01-02 03:04:05.000001+00' where id = ?`,
      [ids[0], ids[1]],
    );

    const live = await api.call('GET', '/api/v1/customers?take=100', { auth });
    const merged = await api.call('GET', '/api/v1/customers?status=MERGED', { auth });
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/^application\/json/);
    expect(live.body.meta).toEqual({ total: 4, skip: 0, take: 100, hasMore: false });
    // Newest first, the merged profile only under its status.
    expect(live.body.data.map((c: { id: string }) => c.id)).toEqual([ids[4], ids[3], ids[2], ids[0]]);
    expect(merged.body.data.map((c: { id: string }) => c.id)).toEqual([ids[1]]);

    for (const listed of [...live.body.data, ...merged.body.data]) {
      const one = await api.call('GET', `/api/v1/customers/${listed.id}`, { auth });
      // Same keys in the same order, same values.
      expect(JSON.stringify(listed)).toBe(JSON.stringify(one.body.data));
    }
    const full = live.body.data.find((c: { id: string }) => c.id === ids[0]);
    expect(full).toMatchObject({
      fullName: 'Zoë "Zee" O\\Brien\ttab', engagementScore: 87, lifetimeValue: 123456, handicap: 12.3,
      lastActivityAt: '2026-03-04T05:06:07.891Z', createdAt: '1999-12-31T21:59:59.999Z',
    });
    expect(merged.body.data[0]).toMatchObject({ fullName: null, mergedIntoId: ids[0], mergedAt: '2026-01-02T03:04:05.000Z' });

    // GraphQL's connection reads its page as JSON too (customerRow): every property as the entity has it.
    const ctx = { tenantId: tenant, em: orm.em.fork(), config: testConfig() } as unknown as ServiceContext;
    const props = orm.getMetadata().get(Customer).props.map((p) => p.name);
    const pages = [
      await customersConnection(ctx, {}, { first: 100 }),
      await customersConnection(ctx, {}, { last: 2 }),
      await customersConnection(ctx, { status: 'MERGED' }, {}),
    ];
    expect(pages.map((page) => page.edges.map((e) => e.node.id))).toEqual([[ids[4], ids[3], ids[2], ids[0]], [ids[2], ids[0]], [ids[1]]]);
    for (const { node } of pages.flatMap((page) => page.edges)) {
      const entity = await orm.em.fork().findOneOrFail(Customer, node.id);
      expect(Object.fromEntries(props.map((p) => [p, node[p as keyof Customer]]))).toEqual(Object.fromEntries(props.map((p) => [p, entity[p as keyof Customer]])));
    }
    const first = pages[0]!.edges.find((e) => e.node.id === ids[0])!.node;
    expect(first.emailBouncedAt).toEqual(new Date('2026-02-03T04:05:06.789Z'));
    expect(first.createdAt).toEqual(new Date('1999-12-31T21:59:59.999Z'));
  });

  // customers(...) and segmentMembers(...) fetch only the properties their selected node fields
  // read (READS in api/graphql/operations/customers.ts): each field asked alone answers as in a
  // whole selection.
  it('answers each Customer field selected alone as in a selection of all of them', async () => {
    const customer = buildSchema(typeDefs.join('\n')).getType('Customer') as GraphQLObjectType;
    const fields = Object.values(customer.getFields()).map((f) => `${f.name} ${selection(getNamedType(f.type), 1)}`.trim());
    const segment = await api.call('POST', '/api/v1/segments', { auth, body: { name: 'everyone listed', type: 'STATIC' } });
    expect(segment.status).toBe(201);
    await orm.em.fork().execute(
      `insert into segment_members (segment_id, customer_id, tenant_id) select ?, id, tenant_id from customers where tenant_id = ? and status = 'ACTIVE'`,
      [segment.body.data.id, tenant],
    );
    const connections = [`customers(tenantId: "${tenant}", filter: { status: ACTIVE })`, `segmentMembers(segmentId: "${segment.body.data.id}")`];
    for (const connection of connections) {
      const page = async (nodeFields: string) => {
        const res = await api.call('POST', '/graphql', { auth, body: { query: `{ list: ${connection} { totalCount edges { cursor node { ${nodeFields} } } } }` } });
        expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
        return res.body.data.list as { totalCount: number; edges: { cursor: string; node: Record<string, unknown> }[] };
      };
      const whole = await page(fields.join(' '));
      expect(whole.edges.length, connection).toBeGreaterThan(1);
      expect(whole.totalCount, connection).toBe(whole.edges.length);
      // What a field reads under another name (READS) must be right in the whole selection too.
      expect(whole.edges.some((e) => e.node.fullName === 'Zoë "Zee" O\\Brien\ttab'), connection).toBe(true);
      expect(whole.edges.some((e) => (e.node.homeClub as { id: string } | null)?.id === 'club_1'), connection).toBe(true);
      for (const field of fields) {
        const name = field.split(' ')[0]!;
        const alone = (await page(field)).edges;
        expect(alone.map((e) => e.cursor)).toEqual(whole.edges.map((e) => e.cursor));
        expect(alone.map((e) => e.node[name]), `${connection} ${name}`).toEqual(whole.edges.map((e) => e.node[name]));
      }
    }
  });

  it('pages with skip and take, and answers an empty page as an empty array', async () => {
    const other = await token(newTenant());
    const empty = await api.call('GET', '/api/v1/customers', { auth: other });
    expect(empty.body).toEqual({ data: [], meta: { total: 0, skip: 0, take: 25, hasMore: false } });
    const second = await api.call('GET', '/api/v1/customers?skip=1&take=2', { auth });
    const all = await api.call('GET', '/api/v1/customers?take=100', { auth });
    expect(second.body.data).toEqual(all.body.data.slice(1, 3));
    expect(second.body.meta).toEqual({ total: all.body.meta.total, skip: 1, take: 2, hasMore: true });
  });
});

describe('first pages', () => {
  // Planned on every request, a page cost PostgreSQL three times what running it does.
  it('run from a plan kept per tenant on each connection, and each tenant reads only its own', async () => {
    const own = await openOrm(testConfig().DATABASE_URL!, undefined, { pool: { min: 0, max: 1 } }); // one connection for both tenants
    try {
      const tenants = [newTenant(), newTenant()];
      const ids = new Map<string, string[]>();
      for (const t of tenants) {
        const rows = await own.em.fork().execute<{ id: string }[]>(
          `insert into customers (tenant_id, email) select ?, 'p' || g || '@example.com' from generate_series(1, 3) g returning id`, [t]);
        ids.set(t, rows.map((r) => r.id).sort().reverse());
      }
      const ctx = (tenantId: string) => ({ tenantId, em: own.em.fork(), config: testConfig() }) as unknown as ServiceContext;
      for (let i = 0; i < 10; i++) {
        for (const t of tenants) {
          const rest = await listCustomersPage(ctx(t), {}, 0, 25);
          expect(JSON.parse(rest.data).map((c: { id: string }) => c.id)).toEqual(ids.get(t));
          expect(rest.total).toBe(3);
          const graphql = await customersConnection(ctx(t), {}, { first: 2 }, { countNow: true });
          expect(graphql.edges.map((e) => e.node.id)).toEqual(ids.get(t)!.slice(0, 2));
          expect(await graphql.totalCount).toBe(3);
        }
      }
      const plans = await own.em.fork().execute<{ custom: number; generic: number }[]>(
        `select custom_plans::int as custom, generic_plans::int as generic from pg_prepared_statements where statement like '%from customers c where c.tenant_id =%'`);
      // REST's and GraphQL's, for each tenant: its values written in, planned once and kept.
      expect(plans).toHaveLength(4);
      for (const p of plans) expect(p).toEqual({ custom: 0, generic: 10 });
    } finally {
      await own.close();
    }
  });
});

