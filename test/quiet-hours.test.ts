import { describe, expect, it } from 'vitest';
import { quietUntil } from '../activities/campaigns.js';

// A campaign's quiet hours as checked just before each send, in the recipient's zone.
describe('quiet hours at send time', () => {
  const night = { start: '21:00', end: '08:00' };

  it('holds a send due inside overnight quiet hours until they end, in the recipient\'s zone', () => {
    // 00:00 in Johannesburg (UTC+2): quiet until 08:00 there, 06:00 UTC.
    expect(quietUntil(night, ['Africa/Johannesburg'], new Date('2026-11-25T22:00:00Z'))).toEqual(new Date('2026-11-26T06:00:00Z'));
    // 21:30 the evening before counts too: until 08:00 the next morning.
    expect(quietUntil(night, ['Africa/Johannesburg'], new Date('2026-11-25T19:30:00Z'))).toEqual(new Date('2026-11-26T06:00:00Z'));
    expect(quietUntil(night, ['Africa/Johannesburg'], new Date('2026-11-25T10:00:00Z'))).toBeNull();
  });

  it('ends at the local hour across a DST change', () => {
    // London springs forward on 2027-03-28 at 01:00 UTC: 08:00 that morning is 07:00 UTC.
    expect(quietUntil(night, ['Europe/London'], new Date('2027-03-28T00:30:00Z'))).toEqual(new Date('2027-03-28T07:00:00Z'));
  });

  it('takes a daytime window, and the campaign\'s zone when the club\'s is unknown', () => {
    const lunch = { start: '12:00', end: '13:00' };
    expect(quietUntil(lunch, ['Not/AZone', 'America/New_York'], new Date('2026-11-25T17:30:00Z'))).toEqual(new Date('2026-11-25T18:00:00Z'));
    expect(quietUntil(lunch, [null, 'America/New_York'], new Date('2026-11-25T18:00:00Z'))).toBeNull();
  });
});
