import type pg from 'pg';

// Campaign rows written straight to the tables, for tests of what reads them (tracking, receipts,
// statistics) without running the send engine.

export async function seedCustomer(db: pg.Client, tenant: string, set: { email?: string | null; firstName?: string; lastName?: string; emailOptIn?: boolean; smsOptIn?: boolean; pushOptIn?: boolean } = {}) {
  const { rows } = await db.query<{ id: string }>(
    `insert into customers (tenant_id, email, first_name, last_name, email_opt_in, sms_opt_in, push_opt_in)
     values ($1, $2, $3, $4, $5, $6, $7) returning id`,
    [tenant, set.email ?? null, set.firstName ?? null, set.lastName ?? null, set.emailOptIn ?? true, set.smsOptIn ?? true, set.pushOptIn ?? true],
  );
  return rows[0]!.id;
}

export async function seedCampaign(db: pg.Client, tenant: string, set: { name?: string; channels?: string[]; conversionEvent?: string } = {}) {
  const { rows } = await db.query<{ id: string }>(
    `insert into campaigns (tenant_id, name, type, status, channels, conversion_event, started_at)
     values ($1, $2, 'ONE_TIME', 'ACTIVE', $3, $4, now()) returning id`,
    [tenant, set.name ?? 'Spring Open', set.channels ?? ['EMAIL'], set.conversionEvent ?? null],
  );
  return rows[0]!.id;
}

export async function seedDelivery(
  db: pg.Client, tenant: string, campaignId: string, customerId: string,
  set: { channel?: string; status?: string; sentAt?: Date | null; runKey?: string; providerMessageId?: string } = {},
) {
  const status = set.status ?? 'SENT';
  const sentAt = set.sentAt !== undefined ? set.sentAt : ['SENT', 'DELIVERED', 'BOUNCED'].includes(status) ? new Date() : null;
  const { rows } = await db.query<{ id: string }>(
    `insert into campaign_deliveries (tenant_id, campaign_id, customer_id, run_key, channel, status, sent_at, provider_message_id)
     values ($1, $2, $3, $4, $5, $6, $7, $8) returning id`,
    [tenant, campaignId, customerId, set.runKey ?? 'once', set.channel ?? 'EMAIL', status, sentAt, set.providerMessageId ?? null],
  );
  return rows[0]!.id;
}
