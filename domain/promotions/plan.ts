import { DateTime } from 'luxon';

// When a promotion sends what, as a pure function of the promotion, the latest state of its source
// and the keys already sent: the workflow (workflows/event-promotion.ts) reads it through an
// activity each time it wakes or is told something changed, and sleeps until the next send.

export interface PlanPromotion {
  id: string;
  isActive: boolean;
  autoPromote: boolean;
  announceAt?: Date | null;
  reminderDays: number[];
}

export interface PlanSource {
  startsAt: Date;
  cancelledAt?: Date | null;
  /** When `startsAt` last changed. */
  startsAtChangedAt?: Date | null;
}

export interface PlannedSend {
  key: string;
  kind: 'ANNOUNCE' | 'REMINDER';
  /** REMINDER: days before the event. */
  days?: number;
  at: Date;
}

export type PlanStep =
  | { stop: string }
  | { stop?: undefined; due: PlannedSend[]; nextAt: Date | null };

/**
 * A reminder `days` before the event is due at the event's local time of day, `days` calendar days
 * earlier in the club's zone (luxon's calendar arithmetic: 18:00 stays 18:00 across a DST change).
 * Its key carries the event's local date, so a moved event is reminded again for its new date.
 */
export function plannedSends(p: PlanPromotion, source: PlanSource, zone: string): PlannedSend[] {
  const starts = DateTime.fromJSDate(source.startsAt, { zone });
  const date = starts.toISODate();
  const sends: PlannedSend[] = p.reminderDays.map((days) => ({
    key: `${p.id}:reminder:${days}:${date}`, kind: 'REMINDER', days, at: starts.minus({ days }).toJSDate(),
  }));
  if (p.announceAt) sends.push({ key: `${p.id}:announce`, kind: 'ANNOUNCE', at: p.announceAt });
  return sends.sort((a, b) => a.at.getTime() - b.at.getTime());
}

/**
 * What to send at `now`. Nothing more once the promotion is inactive or not automatic, the event
 * is cancelled or has begun. The announcement goes once, late if need be. Of the reminders whose
 * time has come only the latest counts (one missed while nothing ran, the promotion created after
 * it, is not sent after the fact), and only if its time came after the event last moved: one whose
 * time passed while the event was elsewhere is not sent (moved a day later once every reminder had
 * gone, its 3-day reminder went out at once, after the 1-day one).
 */
export function planStep(p: PlanPromotion, source: PlanSource | null, zone: string, sent: ReadonlySet<string>, now: Date): PlanStep {
  if (!p.isActive) return { stop: 'promotion inactive' };
  if (!p.autoPromote) return { stop: 'autoPromote off' };
  // No event received yet for the source: wait to hear of it.
  if (!source) return { due: [], nextAt: null };
  if (source.cancelledAt) return { stop: 'event cancelled' };
  if (source.startsAt.getTime() <= now.getTime()) return { stop: 'event started' };
  const sends = plannedSends(p, source, zone);
  const moved = source.startsAtChangedAt?.getTime() ?? -Infinity;
  const past = sends.filter((s) => s.at.getTime() <= now.getTime() && (s.kind === 'ANNOUNCE' || s.at.getTime() >= moved));
  const lastReminder = past.filter((s) => s.kind === 'REMINDER').at(-1);
  const due = past.filter((s) => !sent.has(s.key) && (s.kind === 'ANNOUNCE' || s === lastReminder));
  const next = sends.find((s) => s.at.getTime() > now.getTime() && !sent.has(s.key));
  // Nothing left to send: wake when the event begins, to end.
  return { due, nextAt: next?.at ?? source.startsAt };
}
