import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';
import { until } from './support/until.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

async function tenantWithToken() {
  const t = newTenant();
  return { t, auth: await token(t) };
}

describe('resolveCustomer', () => {
  it('creates a profile on a miss, then finds it by any identifier with matchedBy and confidence', async () => {
    const { t, auth } = await tenantWithToken();
    const q = `query($e: String, $p: String, $a: ID) { resolveCustomer(tenantId: "${t}", email: $e, phone: $p, authUserId: $a) {
      profile { id email phoneNumber } resolution { isNew matchedBy confidence } } }`;
    const created = (await api.graphql(auth, q, { e: 'New@Example.com', p: '0821110000' })).body.data.resolveCustomer;
    expect(created.resolution).toEqual({ isNew: true, matchedBy: [], confidence: 100 });
    expect(created.profile).toMatchObject({ email: 'new@example.com', phoneNumber: '+27821110000' });

    const byPhone = (await api.graphql(auth, q, { p: '+27 82 111 0000' })).body.data.resolveCustomer;
    expect(byPhone.profile.id).toBe(created.profile.id);
    expect(byPhone.resolution).toEqual({ isNew: false, matchedBy: ['phone'], confidence: 100 });

    // A new identifier nobody owns is attached to the matched profile.
    const withAuth = (await api.graphql(auth, q, { e: 'new@example.com', a: 'auth|42' })).body.data.resolveCustomer;
    expect(withAuth.resolution).toEqual({ isNew: false, matchedBy: ['email'], confidence: 40 }); // 2 of 2 + 3
    const rest = await api.call('POST', '/api/v1/customers/resolve', { auth, body: { authUserId: 'auth|42' } });
    expect(rest.body.data.profile.id).toBe(created.profile.id);
    expect(rest.body.data.resolution.matchedBy).toEqual(['authUserId']);

    // A phone alone does not vouch for a new email: it is not attached.
    const phoneOnly = (await api.graphql(auth, q, { e: 'other@example.com', p: '0821110000' })).body.data.resolveCustomer;
    expect(phoneOnly.resolution).toEqual({ isNew: false, matchedBy: ['phone'], confidence: 33 });
    expect((await api.call('GET', `/api/v1/customers/${created.profile.id}`, { auth })).body.data.email).toBe('new@example.com');
  });

  it('needs an identifier, and a crm:read token finds but never creates', async () => {
    const { t, auth } = await tenantWithToken();
    const none = await api.call('POST', '/api/v1/customers/resolve', { auth, body: {} });
    expect(none.status).toBe(400);
    const readOnly = await token(t, ['crm:read']);
    const miss = await api.graphql(readOnly, `{ resolveCustomer(tenantId: "${t}", email: "ghost@example.com") { profile { id } } }`);
    expect(miss.body.data.resolveCustomer).toBeNull();
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(0);
    // Nor does it attach identifiers or record conflicts on a hit.
    const known = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'known@example.com' } })).body.data;
    const hit = await api.graphql(readOnly, `{ resolveCustomer(tenantId: "${t}", email: "known@example.com", authUserId: "auth|9") { profile { id } resolution { matchedBy confidence } } }`);
    expect(hit.body.data.resolveCustomer).toEqual({ profile: { id: known.id }, resolution: { matchedBy: ['email'], confidence: 40 } });
    expect((await api.call('GET', `/api/v1/customers/${known.id}`, { auth })).body.data.authUserId).toBeNull();
  });

  it('creates exactly one profile when the same identity is resolved concurrently', async () => {
    const { auth } = await tenantWithToken();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => api.call('POST', '/api/v1/customers/resolve', { auth, body: { email: 'race@example.com' } })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.body.data.profile.id)).size).toBe(1);
    expect(results.filter((r) => r.body.data.resolution.isNew)).toHaveLength(1);
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(1);
  });

  it('returns the profile, not a conflict, when a create for the same identity races a resolve', async () => {
    const { auth } = await tenantWithToken();
    const [resolved, created] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, () => api.call('POST', '/api/v1/customers/resolve', { auth, body: { email: 'both@example.com' } }))),
      api.call('POST', '/api/v1/customers', { auth, body: { email: 'both@example.com' } }),
    ]);
    expect(resolved.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const ids = new Set(resolved.map((r) => r.body.data.profile.id));
    expect(ids.size).toBe(1);
    if (created.status === 201) expect(ids.has(created.body.data.id)).toBe(true);
    else expect(created.body.error).toMatchObject({ code: 'CONFLICT', existingId: [...ids][0] });
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(1);
  });

  it('returns the best match when identifiers point at different profiles, and records the conflict', async () => {
    const { auth } = await tenantWithToken();
    const a = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'a@example.com', authUserId: 'auth|a' } })).body.data;
    const b = (await api.call('POST', '/api/v1/customers', { auth, body: { phoneNumber: '+27825550123' } })).body.data;
    const res = await api.call('POST', '/api/v1/customers/resolve', { auth, body: { email: 'a@example.com', phone: '+27825550123' } });
    expect(res.body.data.profile.id).toBe(a.id); // email outweighs phone
    expect(res.body.data.resolution).toEqual({ isNew: false, matchedBy: ['email'], confidence: 67 });
    const timeline = await api.call('GET', `/api/v1/customers/${a.id}/timeline`, { auth });
    const conflict = timeline.body.data.find((x: any) => x.type === 'identity.conflict');
    expect(conflict).toMatchObject({ category: 'SYSTEM', metadata: { conflicting: ['phone'], otherCustomerIds: [b.id] } });
    // The phone stays with its owner.
    expect((await api.call('GET', `/api/v1/customers/${a.id}`, { auth })).body.data.phoneNumber).toBeNull();
  });
});

describe('resolveCustomer racing a merge', () => {
  it('adds a new identifier to the profile the merge kept, not to the one it merged away', async () => {
    const { t, auth } = await tenantWithToken();
    const create = async (body: Record<string, unknown>) => (await api.call('POST', '/api/v1/customers', { auth, body })).body.data.id as string;
    const loser = await create({ email: 'ann@race.test', firstName: 'Ann' });
    const winner = await create({ phoneNumber: '+27821234567', firstName: 'Ann' });
    // A merge in progress: it holds the loser's row, and will hand its email to the winner.
    const merge = new pg.Client({ connectionString: inject('databaseUrl') });
    const watch = new pg.Client({ connectionString: inject('databaseUrl') });
    await merge.connect();
    await watch.connect();
    try {
      await merge.query('begin');
      await merge.query('select id from customers where id = $1 for update', [loser]);
      const resolving = api.call('POST', '/api/v1/customers/resolve', { auth, body: { email: 'ann@race.test', authUserId: 'auth|race' } });
      // Watched from outside the merge's transaction, whose view of pg_stat_activity stays as first read.
      await until('the resolution to wait on the merge', async () => (await watch.query(
        `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%customers%'`,
      )).rows[0].n > 0, 10_000);
      await merge.query(`update customers set status = 'MERGED', merged_into_id = $2, merged_at = now() where id = $1`, [loser, winner]);
      await merge.query(`update customers set email = 'ann@race.test' where id = $1`, [winner]);
      await merge.query('commit');
      const resolved = await resolving;
      expect(resolved.status, JSON.stringify(resolved.body)).toBe(200);
      expect(resolved.body.data.profile.id).toBe(winner);
      const { rows } = await merge.query('select id, auth_user_id from customers where tenant_id = $1 order by id', [t]);
      expect(Object.fromEntries(rows.map((r) => [r.id, r.auth_user_id]))).toEqual({ [loser]: null, [winner]: 'auth|race' });
    } finally {
      await merge.end();
      await watch.end();
    }
  });
});

describe('mergeCustomers', () => {
  it('moves everything to the winner in one go and keeps the loser readable as MERGED', async () => {
    const { auth } = await tenantWithToken();
    const post = (path: string, body: unknown) => api.call('POST', path, { auth, body });
    const winner = (await post('/api/v1/customers', { email: 'w@example.com', firstName: 'Wendy' })).body.data;
    const loser = (await post('/api/v1/customers', { email: 'l@example.com', phoneNumber: '+27829990000', firstName: 'W.', lastName: 'Smith', membershipTier: 'GOLD' })).body.data;
    await post(`/api/v1/customers/${loser.id}/notes`, { content: 'Prefers morning tee times', isPinned: true });
    await post('/api/v1/events', {
      type: 'booking.created', occurredAt: '2026-11-01T08:00:00Z', customer: { id: loser.id }, category: 'BOOKING', title: 'Tee time',
      sourceService: 'bookings', sourceEventId: 'merge-1',
    });

    const merged = await post('/api/v1/customers/merge', { winnerId: winner.id, loserId: loser.id });
    expect(merged.status).toBe(200);
    expect(merged.body.data.mergedFields.sort()).toEqual(['lastName', 'membershipTier', 'phoneNumber']);
    expect(merged.body.data.winner).toMatchObject({ email: 'w@example.com', firstName: 'Wendy', lastName: 'Smith', phoneNumber: '+27829990000', membershipTier: 'GOLD' });
    expect(new Date(merged.body.data.winner.lastActivityAt).toISOString()).toBe('2026-11-01T08:00:00.000Z');

    const gone = (await api.call('GET', `/api/v1/customers/${loser.id}`, { auth })).body.data;
    expect(gone).toMatchObject({ status: 'MERGED', mergedIntoId: winner.id });
    const notes = await api.call('GET', `/api/v1/customers/${winner.id}/notes`, { auth });
    expect(notes.body.data.map((n: any) => n.content)).toEqual(['Prefers morning tee times']);
    const winnerTimeline = (await api.call('GET', `/api/v1/customers/${winner.id}/timeline`, { auth })).body.data.map((a: any) => a.type);
    expect(winnerTimeline).toEqual(expect.arrayContaining(['booking.created', 'customer.merged']));
    const loserTimeline = (await api.call('GET', `/api/v1/customers/${loser.id}/timeline`, { auth })).body.data.map((a: any) => a.type);
    expect(loserTimeline).toEqual(['customer.merged_into']);
    // The loser's email went with it: resolving it finds the winner.
    const resolved = await post('/api/v1/customers/resolve', { phone: '+27829990000' });
    expect(resolved.body.data.profile.id).toBe(winner.id);
    // Events addressed to the merged id land on the winner.
    const late = await post('/api/v1/events', {
      type: 'booking.created', occurredAt: '2026-11-02T08:00:00Z', customer: { id: loser.id }, category: 'BOOKING', title: 'Late', sourceService: 'bookings', sourceEventId: 'merge-2',
    });
    expect(late.body.data.results[0]).toMatchObject({ status: 'created', customerId: winner.id });
  });

  it('refuses self-merges, already-merged profiles, other tenants and missing scope', async () => {
    const { auth } = await tenantWithToken();
    const post = (body: unknown, as = auth) => api.call('POST', '/api/v1/customers/merge', { auth: as, body });
    const a = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'ma@example.com' } })).body.data;
    const b = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'mb@example.com' } })).body.data;
    const c = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'mc@example.com' } })).body.data;
    const self = await post({ winnerId: a.id, loserId: a.id });
    expect(self.status).toBe(400);
    expect(self.body.error.message).toContain('itself');
    expect((await post({ winnerId: a.id, loserId: b.id })).status).toBe(200);
    const again = await post({ winnerId: c.id, loserId: b.id });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('MERGED') });
    const intoMerged = await post({ winnerId: b.id, loserId: c.id });
    expect(intoMerged.body.error.code).toBe('INVALID_STATE');
    const stranger = await tenantWithToken();
    const x = (await api.call('POST', '/api/v1/customers', { auth: stranger.auth, body: { email: 'x@example.com' } })).body.data;
    expect((await post({ winnerId: a.id, loserId: x.id })).status).toBe(404);
    const writer = await token(stranger.t, ['crm:read', 'crm:write']);
    expect((await post({ winnerId: x.id, loserId: x.id }, writer)).status).toBe(403);
    const gql = await api.graphql(auth, `mutation { mergeCustomers(winnerId: "${a.id}", loserId: "${c.id}") { winner { id email } mergedFields } }`);
    expect(gql.body.data.mergeCustomers).toEqual({ winner: { id: a.id, email: 'ma@example.com' }, mergedFields: [] });
  });
});
