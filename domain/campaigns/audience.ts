import type { Campaign } from '../../db/entities/index.js';
import { pgArray } from '../../db/sql.js';

// The audience snapshot of one run as a single INSERT … SELECT: every member (or the one triggered
// customer) × every messaging channel of the campaign (SOCIAL publishes posts, to no one in
// particular) becomes a delivery row, PENDING or SKIPPED with the
// reason, and with the instant it may go (`send_at`) when time zones or quiet hours say so. Nothing
// is loaded into Node, whatever the audience's size.

// Consent and addresses per channel. IN_APP needs an app account (authUserId), no opt-in.
const SKIP_REASON = `
  case
    when c.status in ('MERGED', 'DELETED') then 'INACTIVE'
    when ch.channel = 'EMAIL' and c.email is null then 'NO_ADDRESS'
    when ch.channel = 'EMAIL' and c.email_bounced_at is not null then 'BOUNCED'
    when ch.channel = 'EMAIL' and not c.email_opt_in then 'NO_CONSENT'
    when ch.channel in ('SMS', 'WHATSAPP') and c.phone_number is null then 'NO_ADDRESS'
    when ch.channel in ('SMS', 'WHATSAPP') and not c.sms_opt_in then 'NO_CONSENT'
    when ch.channel = 'PUSH' and not c.push_opt_in then 'NO_CONSENT'
    when ch.channel = 'IN_APP' and c.auth_user_id is null then 'NO_ADDRESS'
  end`;

/** A journey SEND step's one message: its channel, and the enrolment and step it belongs to. */
export interface JourneySend {
  channel: string;
  enrollmentId: string;
  stepId: string;
}

export function audienceInsert(campaign: Campaign, runKey: string, customerId: string | null, now: Date, journey?: JourneySend): { sql: string; params: unknown[] } {
  const campaignZone = campaign.timezone ?? 'UTC';
  // scheduledAt's wall-clock time in the campaign's zone, as the same wall-clock time in the
  // recipient's zone (home club's, else the campaign's). PostgreSQL's zone rules make it DST-correct.
  const local = campaign.type === 'ONE_TIME' && campaign.sendInRecipientTimezone && campaign.scheduledAt;
  const base = local ? `(to_char(?::timestamptz at time zone ?, 'YYYY-MM-DD HH24:MI:SS')::timestamp at time zone z.zone)` : 'null::timestamptz';
  const baseParams = local ? [campaign.scheduledAt!.toISOString(), campaignZone] : [];
  // Quiet hours: a send due inside [start, end) of the recipient's day waits until `end` there.
  // Judged when the send would go: at scheduledAt's local time, or now if that has passed there
  // already (a zone ahead of the campaign's, a run that woke late).
  const quiet = campaign.quietHours;
  const sendAt = quiet
    ? `case when ${quiet.start <= quiet.end ? '(l.lt >= ?::time and l.lt < ?::time)' : '(l.lt >= ?::time or l.lt < ?::time)'}
            then ((l.ld + case when l.lt >= ?::time then 1 else 0 end) + ?::time) at time zone z.zone
            else b.at end`
    : 'b.at';
  const quietParams = quiet ? [quiet.start, quiet.end, quiet.end, quiet.end] : [];
  const members = customerId ? '(select ?::uuid as customer_id) m' : 'segment_members m';
  // Zone names are checked against PostgreSQL's own list once per statement (a club's unknown zone
  // falls back to the campaign's), not once per row.
  const sql = `
    with zones as materialized (select name from pg_timezone_names)
    insert into campaign_deliveries (id, tenant_id, campaign_id, customer_id, run_key, channel, status, skip_reason, send_at, journey_enrollment_id, journey_step_id)
    select gen_random_uuid(), c.tenant_id, ?, c.id, ?, ch.channel,
           case when r.reason is null then 'PENDING' else 'SKIPPED' end, r.reason,
           case when r.reason is null then s.send_at end, ?::uuid, ?::uuid
      from ${members}
      join customers c on c.tenant_id = ? and c.id = m.customer_id
      cross join unnest(?::text[]) as ch(channel)
      left join clubs k on k.tenant_id = c.tenant_id and k.id = c.home_club_id
      left join zones tz on tz.name = k.timezone
      cross join lateral (select coalesce(tz.name, ?) as zone) z
      cross join lateral (select ${SKIP_REASON} as reason) r
      cross join lateral (select ${base} as at) b
      cross join lateral (select greatest(b.at, ?::timestamptz) as t) n
      cross join lateral (select (n.t at time zone z.zone)::time as lt, (n.t at time zone z.zone)::date as ld) l
      cross join lateral (select ${sendAt} as send_at) s
     ${customerId ? '' : 'where m.segment_id = ? and m.tenant_id = ?'}
    on conflict (campaign_id, run_key, customer_id, channel) do nothing`;
  return {
    sql,
    params: [
      campaign.id, runKey, journey?.enrollmentId ?? null, journey?.stepId ?? null,
      ...(customerId ? [customerId] : []), campaign.tenantId, pgArray(journey ? [journey.channel] : campaign.channels.filter((c) => c !== 'SOCIAL')), campaignZone,
      ...baseParams, now.toISOString(), ...quietParams,
      ...(customerId ? [] : [campaign.segment?.id ?? null, campaign.tenantId]),
    ],
  };
}
