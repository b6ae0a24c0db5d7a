import { DateTime, Duration } from 'luxon';
import type { WaitConfig } from './steps.js';

// When a WAIT step ends, from the instant it starts (the workflow's clock): after a duration, at a
// date, or at an event's timeout; `atLocalTime` then moves that end to the next such wall-clock
// time at or after it, in the zone given (DST-correct: luxon's zone rules).

const validZone = (zone: string | null | undefined): zone is string => !!zone && DateTime.local().setZone(zone).isValid;

/** The first valid zone of `zones`, else UTC. */
export const firstZone = (...zones: (string | null | undefined)[]): string => zones.find(validZone) ?? 'UTC';

export function wakeAt(config: WaitConfig, from: Date, zone: string): Date {
  const start = DateTime.fromJSDate(from, { zone: 'UTC' });
  let end: DateTime;
  if (config.until !== undefined) end = DateTime.fromISO(config.until, { zone: 'UTC' });
  else end = start.plus(Duration.fromISO((config.duration ?? config.timeout)!));
  if (config.atLocalTime !== undefined) {
    const [hour, minute] = config.atLocalTime.split(':').map(Number) as [number, number];
    const local = end.setZone(zone);
    let at = local.set({ hour, minute, second: 0, millisecond: 0 });
    // The next day at the same wall-clock time (a day of 23 or 25 hours across a DST change).
    if (at < local) at = local.plus({ days: 1 }).set({ hour, minute, second: 0, millisecond: 0 });
    end = at;
  }
  return end.toJSDate();
}
