import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { journeyWorkflowId } from '../workflows/journey.js';
import { newTenant, token, type TestApi } from './support/api.js';
import { startSmtpSink, type SmtpSink } from './support/smtp.js';
import { startTimeSkippingStack, type TimeSkippingStack } from './support/time-skipping-stack.js';
import { until } from './support/until.js';

// The welcome journey the way a club runs it, through nothing but the public API and an upstream
// system's events: built and activated over REST, entered by POST /events, handed to Temporal by the
// worker's outbox dispatcher, run on the time-skipping server (three days pass in seconds), and read
// back over REST and GraphQL. The pieces have their own tests (journeys, journey-enrollment,
// journey-engine); this one checks they meet.

let stack: TimeSkippingStack;
let messaging: MessagingServer;
let smtp: SmtpSink;
let api: TestApi;
let db: pg.Client;

beforeAll(async () => {
  messaging = await startMessagingServer();
  smtp = await startSmtpSink();
  stack = await startTimeSkippingStack(
    'welcome',
    { MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, SMTP_URL: smtp.url, RATE_LIMIT_WRITE: '100000', RATE_LIMIT_READ: '100000' },
    // This file's worker relays the outbox (other files' rows it starts go to its task queue and are
    // never run, as in any shared database).
    { OUTBOX_DISPATCH: 'true', OUTBOX_POLL_MS: '200' },
  );
  ({ api, db } = stack);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await smtp?.close();
  await messaging?.close();
});

describe('a welcome journey, end to end', () => {
  it('enrols new members from upstream events, emails them, waits three days, and texts only who did not open it', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const call = async (method: string, path: string, body?: unknown, status = method === 'POST' && !path.includes('/activate') ? 201 : 200) => {
      const res = await api.call(method, `/api/v1${path}`, { auth, body });
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(status);
      return res.body.data;
    };

    const email = await call('POST', '/templates', { name: 'Welcome', channel: 'EMAIL', subject: 'Welcome to the club', body: '<p>Welcome, {{ firstName }}!</p>' });
    const sms = await call('POST', '/templates', { name: 'Nudge', channel: 'SMS', body: 'Did you see our welcome, {{ firstName }}?' });
    const journey = await call('POST', '/journeys', { name: 'Welcome series', triggerType: 'EVENT', triggerConfig: { event: 'member.joined', conditions: { plan: 'full' } } });
    const trigger = await call('POST', `/journeys/${journey.id}/steps`, { type: 'TRIGGER', name: 'Joined', config: {} });
    const welcome = await call('POST', `/journeys/${journey.id}/steps`, { type: 'SEND', name: 'Welcome email', config: { channel: 'EMAIL', templateId: email.id }, afterStepId: trigger.id });
    const wait = await call('POST', `/journeys/${journey.id}/steps`, { type: 'WAIT', name: 'Three days', config: { duration: 'P3D' }, afterStepId: welcome.id });
    const opened = await call('POST', `/journeys/${journey.id}/steps`, { type: 'CONDITION', name: 'Opened?', config: { criteria: { event: { type: 'campaign.opened' } } }, afterStepId: wait.id });
    const end = await call('POST', `/journeys/${journey.id}/steps`, { type: 'END', config: {} });
    const nudge = await call('POST', `/journeys/${journey.id}/steps`, { type: 'SEND', name: 'Nudge', config: { channel: 'SMS', templateId: sms.id } });
    await call('PATCH', `/journeys/${journey.id}/steps/${opened.id}`, { nextStepYesId: end.id, nextStepNoId: nudge.id });
    await call('PATCH', `/journeys/${journey.id}/steps/${nudge.id}`, { nextStepId: end.id });
    expect((await call('POST', `/journeys/${journey.id}/activate`)).status).toBe('ACTIVE');

    const rita = await call('POST', '/customers', { email: 'rita@welcome.test', phoneNumber: '+447911123456', firstName: 'Rita', emailOptIn: true, smsOptIn: true });
    const sam = await call('POST', '/customers', { email: 'sam@welcome.test', phoneNumber: '+447911123457', firstName: 'Sam', emailOptIn: true, smsOptIn: true });
    const joined = (who: string, plan: string, id: string) => ({
      type: 'member.joined', occurredAt: new Date().toISOString(), category: 'MEMBERSHIP', title: 'Joined the club',
      customer: { email: who }, metadata: { plan }, sourceService: 'membership', sourceEventId: id,
    });
    const ids = { rita: randomUUID(), sam: randomUUID() };
    // Sam's event comes twice (an upstream retry); a social-plan member matches no journey.
    const report = await call('POST', '/events', [
      joined('rita@welcome.test', 'full', ids.rita), joined('sam@welcome.test', 'full', ids.sam), joined('sam@welcome.test', 'full', ids.sam),
      joined('sol@welcome.test', 'social', randomUUID()),
    ], 200);
    expect(report.results.map((r: { status: string }) => r.status)).toEqual(['created', 'created', 'duplicate', 'created']);

    // Each enrolment is handed to Temporal and reaches its wait; both got the email.
    const enrolments = async () => (await call('GET', `/journeys/${journey.id}/enrollments?take=10`)) as any[];
    await until('both waiting', async () => (await enrolments()).filter((e) => e.waitingUntil).length === 2 || undefined);
    expect((await enrolments()).map((e) => e.customerId).sort()).toEqual([rita.id, sam.id].sort());
    const mail = await until('Rita\'s email', async () => smtp.mails.find((m) => (m.to as { text: string }).text === 'rita@welcome.test'));
    expect(mail.html).toContain('Welcome, Rita!');
    await until('Sam\'s email', async () => smtp.mails.find((m) => (m.to as { text: string }).text === 'sam@welcome.test'));

    // Rita opens hers (the tracking pixel); then three days pass on the workflow clock.
    const pixel = /<img src="([^"]+)" width="1" height="1"/.exec(mail.html as string)?.[1];
    expect((await fetch(pixel!.replace(/&amp;/g, '&'))).status).toBe(200);
    for (const c of [rita, sam]) expect(await stack.env.client.workflow.getHandle(journeyWorkflowId(journey.id, c.id, 1)).result()).toBe('COMPLETED');

    // Sam alone got the text; Rita went YES to END, Sam NO to the nudge.
    expect(messaging.messages.filter((m) => m.message.tenantId === tenant).map((m) => m.message.content.body)).toEqual(['Did you see our welcome, Sam?']);
    const gql = await api.graphql(auth, `query($id: ID!) { journey(id: $id) { totalEnrolled totalCompleted totalExited }
      journeyEnrollments(journeyId: $id) { totalCount edges { node { customer { email } status completedAt steps { stepName status } } } } }`, { id: journey.id });
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.journey).toEqual({ totalEnrolled: 2, totalCompleted: 2, totalExited: 0 });
    const byEmail = Object.fromEntries(gql.body.data.journeyEnrollments.edges.map((e: any) => [e.node.customer.email, e.node]));
    expect(byEmail['rita@welcome.test'].steps.map((s: any) => s.stepName)).toEqual(['Joined', 'Welcome email', 'Three days', 'Opened?', null]);
    expect(byEmail['sam@welcome.test'].steps.map((s: any) => s.stepName)).toEqual(['Joined', 'Welcome email', 'Three days', 'Opened?', 'Nudge', null]);
    expect(Object.values(byEmail).every((n: any) => n.status === 'COMPLETED' && n.completedAt && n.steps.every((s: any) => s.status === 'COMPLETED'))).toBe(true);

    // Per-step counts, from PostgreSQL: the wait took three days of workflow time.
    const stats = await call('GET', `/journeys/${journey.id}/stats`);
    const step = (id: string) => stats.steps.find((s: any) => s.stepId === id);
    expect(step(welcome.id)).toMatchObject({ entered: 2, completed: 2 });
    expect(step(nudge.id)).toMatchObject({ entered: 1, completed: 1 });
    const { rows: [w] } = await db.query(
      `select extract(epoch from completed_at - started_at) / 3600 as hours from journey_enrollment_steps where enrollment_id = (select id from journey_enrollments where customer_id = $1) and step_id = $2`,
      [sam.id, wait.id],
    );
    expect(Number(w.hours)).toBeCloseTo(72, 1);
  }, 180_000);
});
