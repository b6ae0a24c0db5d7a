import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { compileTemplate, recipientVariables, type RecipientRow } from '../domain/templates/render.js';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

let api: TestApi;
let db: pg.Client;
beforeAll(async () => {
  api = await startTestApi({ PUBLIC_BASE_URL: 'https://crm.example.test' });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await api?.close();
});

const emailTemplate = {
  name: 'Welcome',
  channel: 'EMAIL',
  subject: 'Welcome, {{ firstName }}',
  body: '<p>Hello {{ customer.fullName }}</p>',
};

async function tenant() {
  const id = newTenant();
  return { id, auth: await token(id) };
}

async function create(auth: string, body: unknown) {
  const res = await api.call('POST', '/api/v1/templates', { auth, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.data;
}

function expectInvalid(res: { status: number; body: any }, field: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.field).toBe(field);
  expect(res.body.error.message.startsWith(`${field}: `), res.body.error.message).toBe(true);
}

describe('templates', () => {
  it('creates, lists by channel, reads, updates and deletes', async () => {
    const { auth } = await tenant();
    const email = await create(auth, emailTemplate);
    expect(email).toMatchObject({ ...emailTemplate, textBody: null, id: expect.any(String), createdAt: expect.any(String) });
    const sms = await create(auth, { name: 'Reminder', channel: 'SMS', body: 'Tee time tomorrow, {{ firstName }}' });
    expect(sms).toMatchObject({ channel: 'SMS', subject: null, textBody: null });
    await create(auth, { name: 'Alert', channel: 'PUSH', subject: 'New event', body: 'Open the app' });

    const all = await api.call('GET', '/api/v1/templates', { auth });
    expect(all.body.data.map((t: any) => t.name)).toEqual(['Alert', 'Reminder', 'Welcome']);
    expect(all.body.meta).toEqual({ total: 3, skip: 0, take: 25, hasMore: false });
    const paged = await api.call('GET', '/api/v1/templates?skip=1&take=1', { auth });
    expect(paged.body.data.map((t: any) => t.name)).toEqual(['Reminder']);
    expect(paged.body.meta).toEqual({ total: 3, skip: 1, take: 1, hasMore: true });
    const smsOnly = await api.call('GET', '/api/v1/templates?channel=SMS', { auth });
    expect(smsOnly.body.data.map((t: any) => t.id)).toEqual([sms.id]);
    expect(smsOnly.body.meta.total).toBe(1);
    expectInvalid(await api.call('GET', '/api/v1/templates?channel=FAX', { auth }), 'query.channel');

    expect((await api.call('GET', `/api/v1/templates/${email.id}`, { auth })).body.data).toEqual(email);
    const updated = await api.call('PATCH', `/api/v1/templates/${email.id}`, { auth, body: { name: 'Welcome v2', textBody: 'Hi {{ firstName }}' } });
    expect(updated.status).toBe(200);
    expect(updated.body.data).toMatchObject({ name: 'Welcome v2', subject: emailTemplate.subject, body: emailTemplate.body, textBody: 'Hi {{ firstName }}' });
    const cleared = await api.call('PATCH', `/api/v1/templates/${email.id}`, { auth, body: { textBody: null } });
    expect(cleared.body.data.textBody).toBeNull();

    expect((await api.call('DELETE', `/api/v1/templates/${email.id}`, { auth })).body).toEqual({ data: { deleted: true } });
    expect((await api.call('GET', `/api/v1/templates/${email.id}`, { auth })).status).toBe(404);
    expect((await api.call('DELETE', `/api/v1/templates/${email.id}`, { auth })).status).toBe(404);
  });

  it('refuses incomplete or misplaced fields, naming them, and writes nothing', async () => {
    const { auth } = await tenant();
    const post = (body: unknown) => api.call('POST', '/api/v1/templates', { auth, body });
    expectInvalid(await post({ ...emailTemplate, subject: undefined }), 'subject');
    expectInvalid(await post({ ...emailTemplate, subject: '   ' }), 'subject');
    expectInvalid(await post({ name: 'x', channel: 'SMS', body: 'hi', textBody: 'hi' }), 'textBody');
    expectInvalid(await post({ name: 'x', channel: 'SOCIAL', body: 'hi' }), 'channel');
    expectInvalid(await post({ ...emailTemplate, name: '' }), 'name');
    expectInvalid(await post({ ...emailTemplate, body: '' }), 'body');
    expectInvalid(await post({ ...emailTemplate, colour: 'red' }), '(body)');
    expect((await api.call('GET', '/api/v1/templates', { auth })).body.meta.total).toBe(0);

    const email = await create(auth, emailTemplate);
    const patch = (body: unknown) => api.call('PATCH', `/api/v1/templates/${email.id}`, { auth, body });
    expectInvalid(await patch({}), '(body)');
    expectInvalid(await patch({ subject: null }), 'subject');
    expectInvalid(await patch({ channel: 'SMS' }), '(body)');
    const sms = await create(auth, { name: 'sms', channel: 'SMS', body: 'hi' });
    expectInvalid(await api.call('PATCH', `/api/v1/templates/${sms.id}`, { auth, body: { textBody: 'text' } }), 'textBody');
    expect((await api.call('GET', `/api/v1/templates/${email.id}`, { auth })).body.data).toEqual(email);
  });

  it('refuses Liquid syntax errors when saved, naming the field', async () => {
    const { auth } = await tenant();
    const post = (over: object) => api.call('POST', '/api/v1/templates', { auth, body: { ...emailTemplate, ...over } });
    const broken = await post({ body: '<p>{% if firstName %}Hi</p>' });
    expectInvalid(broken, 'body');
    expect(broken.body.error.message).toContain('Liquid');
    expectInvalid(await post({ subject: 'Hi {{ firstName' }), 'subject');
    expectInvalid(await post({ textBody: 'Hi {{ firstName | shout }}' }), 'textBody');
    expectInvalid(await post({ body: '{% nosuchtag %}' }), 'body');
    // No file system behind templates: the tags that read files are refused outright.
    for (const tag of ['{% include "/etc/passwd" %}', '{% render "secrets" %}', '{% layout "base" %}']) {
      const res = await post({ body: tag });
      expectInvalid(res, 'body');
      expect(res.body.error.message).toContain('not available in message templates');
    }
    expect((await api.call('GET', '/api/v1/templates', { auth })).body.meta.total).toBe(0);

    const ok = await create(auth, emailTemplate);
    expectInvalid(await api.call('PATCH', `/api/v1/templates/${ok.id}`, { auth, body: { body: '{{ unclosed' } }), 'body');
    expect((await api.call('GET', `/api/v1/templates/${ok.id}`, { auth })).body.data.body).toBe(emailTemplate.body);
  });

  it('previews the message for a customer: customer and club variables, missing ones empty, HTML escaped in the email body only', async () => {
    const { id: tenantId, auth } = await tenant();
    await db.query('insert into clubs (tenant_id, id, name, timezone) values ($1, $2, $3, $4)', [tenantId, 'club-42', 'Royal & Links', 'Africa/Johannesburg']);
    const customer = (await api.call('POST', '/api/v1/customers', {
      auth,
      body: { email: 'ann@example.com', firstName: 'Ann <b>', lastName: 'Lee', membershipTier: 'GOLD', handicap: 7.5, homeClubId: 'club-42' },
    })).body.data;
    const template = await create(auth, {
      name: 'Newsletter',
      channel: 'EMAIL',
      subject: 'News for {{ firstName }} at {{ club.name }}',
      body: '<h1>Dear {{ customer.fullName }}</h1><p>{{ membershipTier }} member, handicap {{ customer.handicap }}, club {{ club.id }}.{{ nothing.here }}{{ customer.shoeSize }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    });
    const res = await api.call('POST', `/api/v1/templates/${template.id}/preview`, { auth, body: { customerId: customer.id } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toEqual({
      subject: 'News for Ann <b> at Royal & Links',
      body: '<h1>Dear Ann &lt;b&gt; Lee</h1><p>GOLD member, handicap 7.5, club club-42.</p><a href="https://crm.example.test/t/u/preview">Unsubscribe</a>',
      textBody: expect.any(String),
    });
    // Derived from the rendered HTML: the text as written, the link spelt out.
    expect(res.body.data.textBody).toContain('Dear Ann <b> Lee');
    expect(res.body.data.textBody).toContain('GOLD member, handicap 7.5, club club-42.');
    expect(res.body.data.textBody).toContain('Unsubscribe [https://crm.example.test/t/u/preview]');

    // A text part of its own is rendered as written, unescaped; other channels are not escaped either.
    await api.call('PATCH', `/api/v1/templates/${template.id}`, { auth, body: { textBody: 'Hi {{ firstName }}, {{ club.name }}{{ missing }}' } });
    expect((await api.call('POST', `/api/v1/templates/${template.id}/preview`, { auth, body: { customerId: customer.id } })).body.data.textBody)
      .toBe('Hi Ann <b>, Royal & Links');
    const sms = await create(auth, { name: 'sms', channel: 'SMS', body: '{{ firstName }} & {{ lastName }}: {{ club.name }}' });
    expect((await api.call('POST', `/api/v1/templates/${sms.id}/preview`, { auth, body: { customerId: customer.id } })).body.data)
      .toEqual({ subject: null, body: 'Ann <b> & Lee: Royal & Links', textBody: null });

    // Without a home club, `club` is empty rather than an error.
    const clubless = (await api.call('POST', '/api/v1/customers', { auth, body: { firstName: 'Bo' } })).body.data;
    expect((await api.call('POST', `/api/v1/templates/${sms.id}/preview`, { auth, body: { customerId: clubless.id } })).body.data.body).toBe('Bo & : ');

    expectInvalid(await api.call('POST', `/api/v1/templates/${sms.id}/preview`, { auth, body: {} }), 'customerId');
    expect((await api.call('POST', `/api/v1/templates/${sms.id}/preview`, { auth, body: { customerId: '00000000-0000-7000-8000-000000000000' } })).status).toBe(404);
  });

  it('renders one compiled template for many recipients without failing on what they lack', async () => {
    const row = (over: Partial<RecipientRow>): RecipientRow => ({
      id: 'c1', email: null, phoneNumber: null, firstName: null, lastName: null, membershipTier: null, membershipStatus: null,
      lifecycleStage: 'MEMBER', handicap: null, homeClubId: null, clubName: null, clubTimezone: null, ...over,
    });
    const compiled = compileTemplate({ channel: 'EMAIL', subject: 'Hi {{ firstName | default: "golfer" }}', body: '<p>{{ customer.fullName }} {{ club.name }}</p>', textBody: null });
    const ann = await compiled.render(recipientVariables(row({ firstName: 'Ann', lastName: 'Lee', homeClubId: 'k', clubName: 'Kloof' }), 'https://u/1'));
    const nobody = await compiled.render(recipientVariables(row({}), 'https://u/2'));
    expect(ann).toEqual({ subject: 'Hi Ann', body: '<p>Ann Lee Kloof</p>', textBody: 'Ann Lee Kloof' });
    expect(nobody).toEqual({ subject: 'Hi golfer', body: '<p> </p>', textBody: '' });
    await expect(compiled.render({})).resolves.toMatchObject({ subject: 'Hi golfer' });
  });

  it('is refused while an unfinished campaign uses it, and deletable once none does', async () => {
    const { id: tenantId, auth } = await tenant();
    const email = await create(auth, emailTemplate);
    const sms = await create(auth, { name: 'sms', channel: 'SMS', body: 'hi' });
    const campaign = (await db.query(
      `insert into campaigns (tenant_id, name, type, status, email_template_id, sms_template_id) values ($1, 'Spring open', 'ONE_TIME', 'DRAFT', $2, $3) returning id`,
      [tenantId, email.id, sms.id],
    )).rows[0].id as string;
    for (const status of ['DRAFT', 'SCHEDULED', 'ACTIVE', 'PAUSED']) {
      await db.query('update campaigns set status = $1 where id = $2', [status, campaign]);
      for (const t of [email, sms]) {
        const res = await api.call('DELETE', `/api/v1/templates/${t.id}`, { auth });
        expect(res.status, status).toBe(409);
        expect(res.body.error.code).toBe('CONFLICT');
        expect(res.body.error.message).toContain('Spring open');
        expect(res.body.error.message).toContain(campaign);
      }
    }
    await db.query(`update campaigns set status = 'COMPLETED' where id = $1`, [campaign]);
    expect((await api.call('DELETE', `/api/v1/templates/${email.id}`, { auth })).status).toBe(200);
    await db.query(`update campaigns set status = 'CANCELLED' where id = $1`, [campaign]);
    expect((await api.call('DELETE', `/api/v1/templates/${sms.id}`, { auth })).status).toBe(200);
  });

  it('keeps tenants apart and takes crm:campaigns to write', async () => {
    const a = await tenant();
    const b = await tenant();
    const template = await create(a.auth, emailTemplate);
    const customerA = (await api.call('POST', '/api/v1/customers', { auth: a.auth, body: { firstName: 'A' } })).body.data;
    const customerB = (await api.call('POST', '/api/v1/customers', { auth: b.auth, body: { firstName: 'B' } })).body.data;
    const templateB = await create(b.auth, { name: 'b', channel: 'SMS', body: 'hi {{ firstName }}' });

    expect((await api.call('GET', `/api/v1/templates/${template.id}`, { auth: b.auth })).status).toBe(404);
    expect((await api.call('PATCH', `/api/v1/templates/${template.id}`, { auth: b.auth, body: { name: 'stolen' } })).status).toBe(404);
    expect((await api.call('DELETE', `/api/v1/templates/${template.id}`, { auth: b.auth })).status).toBe(404);
    expect((await api.call('POST', `/api/v1/templates/${template.id}/preview`, { auth: b.auth, body: { customerId: customerB.id } })).status).toBe(404);
    // B's own template, A's customer: still nothing of A's.
    expect((await api.call('POST', `/api/v1/templates/${templateB.id}/preview`, { auth: b.auth, body: { customerId: customerA.id } })).status).toBe(404);
    expect((await api.call('GET', '/api/v1/templates', { auth: b.auth })).body.data.map((t: any) => t.id)).toEqual([templateB.id]);
    expect((await api.call('GET', `/api/v1/templates/${template.id}`, { auth: a.auth })).body.data.name).toBe('Welcome');

    const reader = await token(a.id, ['crm:read']);
    expect((await api.call('GET', '/api/v1/templates', { auth: reader })).status).toBe(200);
    expect((await api.call('GET', `/api/v1/templates/${template.id}`, { auth: reader })).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/api/v1/templates', emailTemplate],
      ['PATCH', `/api/v1/templates/${template.id}`, { name: 'x' }],
      ['DELETE', `/api/v1/templates/${template.id}`, undefined],
      ['POST', `/api/v1/templates/${template.id}/preview`, { customerId: customerA.id }],
    ] as const) {
      const res = await api.call(method, path, { auth: reader, body });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
    }
    expect((await api.call('GET', `/api/v1/templates/${template.id}`, { auth: a.auth })).body.data.name).toBe('Welcome');
  });
});
