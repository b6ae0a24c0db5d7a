// A client as an API user would write it, against types generated from the OpenAPI document
// (scripts/contract-check.ts generates ./generated/api.d.ts, then compiles this file). It only has
// to compile: a field the document stops describing, or describes differently, breaks the build.
import createClient from 'openapi-fetch';
import type { components, paths } from './generated/api.js';

type Customer = components['schemas']['Customer'];

const api = createClient<paths>({ baseUrl: 'http://localhost:3000/api/v1', headers: { authorization: 'Bearer <token>' } });

export async function tour(): Promise<string[]> {
  const created = await api.POST('/customers', { body: { email: 'ann@example.com', firstName: 'Ann', lifecycleStage: 'MEMBER', emailOptIn: true } });
  if (created.error) return [created.error.error.code, created.error.error.message, created.error.error.requestId];
  const ann: Customer = created.data.data;
  const status: 'ACTIVE' | 'INACTIVE' | 'MERGED' | 'DELETED' = ann.status;
  const score: number | null = ann.engagementScore;

  const list = await api.GET('/customers', { params: { query: { take: 50, status: 'ACTIVE', search: 'ann' } } });
  const more: boolean = list.data?.meta.hasMore ?? false;
  const emails: (string | null)[] = list.data?.data.map((c) => c.email) ?? [];

  const note = await api.POST('/customers/{id}/notes', { params: { path: { id: ann.id } }, body: { content: 'Called back', type: 'SUPPORT' } });
  const pinned: boolean | undefined = note.data?.data.isPinned;

  const timeline = await api.GET('/customers/{id}/timeline', { params: { path: { id: ann.id }, query: { take: 10 } } });
  const next: string | null | undefined = timeline.data?.meta.nextCursor;
  const categories = timeline.data?.data.map((a) => a.category) ?? [];

  const resolved = await api.POST('/customers/resolve', { body: { email: 'ann@example.com' } });
  const confidence: number | undefined = resolved.data?.data.resolution.confidence;

  const events = await api.POST('/events', {
    body: [{
      type: 'booking.created', category: 'BOOKING', title: 'Booked a tee time', occurredAt: new Date().toISOString(),
      customer: { email: 'ann@example.com' }, sourceService: 'bookings', sourceEventId: 'evt-1',
    }],
  });
  const accepted: number | undefined = events.data?.data.accepted;

  const segment = await api.POST('/segments', { body: { name: 'Members', type: 'DYNAMIC', criteria: { field: 'lifecycleStage', operator: 'eq', value: 'MEMBER' } } });
  const segmentId = segment.data?.data.id ?? '';
  const refreshed = await api.POST('/segments/{id}/refresh', { params: { path: { id: segmentId } } });
  const added: number | undefined = refreshed.data?.data.added;
  const members = await api.GET('/segments/{id}/members', { params: { path: { id: segmentId }, query: { take: 100 } } });
  const memberIds: string[] = members.data?.data.map((c) => c.id) ?? [];

  const merged = await api.POST('/customers/merge', { body: { winnerId: ann.id, loserId: memberIds[0] ?? '' } });
  const mergedFields: string[] = merged.data?.data.mergedFields ?? [];

  const imported = await api.POST('/customers/import', {
    body: '{"email":"bob@example.com"}\n',
    headers: { 'content-type': 'application/x-ndjson' },
    bodySerializer: (body: string) => body,
  });
  const rejected: number | undefined = imported.data?.data.rejected;

  const journey = await api.POST('/journeys', { body: { name: 'Welcome', triggerType: 'EVENT', triggerConfig: { event: 'member.joined' }, timezone: 'Africa/Johannesburg' } });
  const journeyId = journey.data?.data.id ?? '';
  const trigger = await api.POST('/journeys/{id}/steps', { params: { path: { id: journeyId } }, body: { type: 'TRIGGER', config: {} } });
  const end = await api.POST('/journeys/{id}/steps', { params: { path: { id: journeyId } }, body: { type: 'END', config: {}, afterStepId: trigger.data?.data.id } });
  const relinked = await api.PATCH('/journeys/{id}/steps/{stepId}', { params: { path: { id: journeyId, stepId: end.data?.data.id ?? '' } }, body: { nextStepId: null } });
  const activated = await api.POST('/journeys/{id}/activate', { params: { path: { id: journeyId } } });
  const faults: { field: string; message: string }[] = activated.error?.error.faults ?? [];
  const version: number | undefined = activated.data?.data.currentVersion;
  const stats = await api.GET('/journeys/{id}/stats', { params: { path: { id: journeyId } } });
  const entered: number[] = stats.data?.data.steps.map((s) => s.entered) ?? [];

  return [status, String(score), String(more), ...emails.map(String), String(pinned), String(next), ...categories, String(confidence),
    String(accepted), String(added), ...mergedFields, String(rejected), String(relinked.data?.data.nextStepId), ...faults.map((f) => f.field), String(version),
    ...entered.map(String)];
}
