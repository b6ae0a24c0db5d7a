import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { planStep, plannedSends, type PlanPromotion } from '../domain/promotions/plan.js';

// The promotion plan on its own: when reminders fall in the club's zone, and what is due when.

const ZONE = 'Europe/London';
const local = (iso: string) => DateTime.fromISO(iso, { zone: ZONE }).toJSDate();
const promotion = (p: Partial<PlanPromotion> = {}): PlanPromotion => ({ id: 'p', isActive: true, autoPromote: true, announceAt: null, reminderDays: [], ...p });
const at = (d: Date) => DateTime.fromJSDate(d, { zone: ZONE }).toFormat('yyyy-MM-dd HH:mm ZZ');

describe('promotion plan', () => {
  it('reminds at the event\'s local time of day, calendar days before, across both DST changes', () => {
    // Spring: the event after the change, the reminders before it; autumn: the other way round.
    const spring = plannedSends(promotion({ reminderDays: [1, 7] }), { startsAt: local('2027-04-03T09:00') }, ZONE);
    expect(spring.map((s) => [s.key, at(s.at)])).toEqual([
      ['p:reminder:7:2027-04-03', '2027-03-27 09:00 +00:00'],
      ['p:reminder:1:2027-04-03', '2027-04-02 09:00 +01:00'],
    ]);
    const autumn = plannedSends(promotion({ reminderDays: [3] }), { startsAt: local('2027-11-01T18:30') }, ZONE);
    expect(autumn.map((s) => at(s.at))).toEqual(['2027-10-29 18:30 +01:00']);
    // A local time the change skips (01:30 on 28 March 2027) moves on by the gap.
    const gap = plannedSends(promotion({ reminderDays: [2] }), { startsAt: local('2027-03-30T01:30') }, ZONE);
    expect(at(gap[0]!.at)).toBe('2027-03-28 02:30 +01:00');
    // Another zone, the same rule: Sydney leaves DST on 4 April 2027.
    const sydney = plannedSends(promotion({ reminderDays: [7] }), { startsAt: DateTime.fromISO('2027-04-08T10:00', { zone: 'Australia/Sydney' }).toJSDate() }, 'Australia/Sydney');
    expect(DateTime.fromJSDate(sydney[0]!.at, { zone: 'Australia/Sydney' }).toFormat('yyyy-MM-dd HH:mm ZZ')).toBe('2027-04-01 10:00 +11:00');
  });

  it('sends what is due once, only the latest of the reminders whose time has come, and stops when it should', () => {
    const p = promotion({ announceAt: local('2027-03-01T12:00'), reminderDays: [7, 3, 1] });
    const source = { startsAt: local('2027-04-03T09:00') };
    const keys = (step: ReturnType<typeof planStep>) => ('due' in step ? step.due.map((s) => s.key) : step.stop);
    // Before anything: the announcement is next.
    expect(planStep(p, source, ZONE, new Set(), local('2027-02-01T00:00'))).toEqual({ due: [], nextAt: local('2027-03-01T12:00') });
    // Created after the 7- and 3-day reminders: the announcement (late) and the 3-day one only.
    const late = planStep(p, source, ZONE, new Set(), local('2027-03-31T10:00'));
    expect(keys(late)).toEqual(['p:announce', 'p:reminder:3:2027-04-03']);
    expect(planStep(p, source, ZONE, new Set(['p:announce', 'p:reminder:3:2027-04-03']), local('2027-03-31T10:00'))).toEqual({ due: [], nextAt: local('2027-04-02T09:00') });
    // All sent: it wakes when the event begins, to end.
    const all = new Set(['p:announce', 'p:reminder:7:2027-04-03', 'p:reminder:3:2027-04-03', 'p:reminder:1:2027-04-03']);
    expect(planStep(p, source, ZONE, all, local('2027-04-02T10:00'))).toEqual({ due: [], nextAt: source.startsAt });
    expect(keys(planStep(p, source, ZONE, all, source.startsAt))).toBe('event started');
    expect(keys(planStep(p, { ...source, cancelledAt: new Date() }, ZONE, new Set(), local('2027-03-02T00:00')))).toBe('event cancelled');
    expect(keys(planStep({ ...p, isActive: false }, source, ZONE, new Set(), local('2027-03-02T00:00')))).toBe('promotion inactive');
    expect(keys(planStep({ ...p, autoPromote: false }, source, ZONE, new Set(), local('2027-03-02T00:00')))).toBe('autoPromote off');
    // No event heard of yet: wait to be told.
    expect(planStep(p, null, ZONE, new Set(), local('2027-03-02T00:00'))).toEqual({ due: [], nextAt: null });
  });

  it('reminds a moved event for its new date, but not with reminders whose time passed while it was elsewhere', () => {
    const p = promotion({ reminderDays: [7, 3, 1] });
    const keys = (step: ReturnType<typeof planStep>) => ('due' in step ? step.due.map((s) => s.key) : step.stop);
    // Every reminder of Saturday's event has gone; on Friday at noon it moves to Sunday.
    const sent = new Set(['p:reminder:7:2027-04-03', 'p:reminder:3:2027-04-03', 'p:reminder:1:2027-04-03']);
    const movedAt = local('2027-04-02T12:00');
    const sunday = { startsAt: local('2027-04-04T09:00'), startsAtChangedAt: movedAt };
    // Not Sunday's 3-day reminder at once (Thursday's, after Friday's 1-day one): Sunday's 1-day, on Saturday.
    expect(planStep(p, sunday, ZONE, sent, movedAt)).toEqual({ due: [], nextAt: local('2027-04-03T09:00') });
    expect(keys(planStep(p, sunday, ZONE, sent, local('2027-04-03T09:00')))).toEqual(['p:reminder:1:2027-04-04']);
    // Moved a day earlier just after its 7-day reminder: the new date's 7-day one, a day past, is not sent.
    const friday = { startsAt: local('2027-04-02T09:00'), startsAtChangedAt: local('2027-03-27T10:00') };
    expect(keys(planStep(p, friday, ZONE, new Set(['p:reminder:7:2027-04-03']), local('2027-03-27T10:00')))).toEqual([]);
  });
});
