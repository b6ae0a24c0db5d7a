import { defineEntity, p, type InferEntity } from '@mikro-orm/core';

// Clubs are owned by the upstream club system; the CRM keeps their id and display name so that
// `Customer.homeClub` and campaign/promotion `clubId`s resolve to something readable.
export const Club = defineEntity({
  name: 'Club',
  tableName: 'clubs',
  properties: {
    tenantId: p.string().length(100).primary(),
    id: p.string().length(100).primary(),
    name: p.string().nullable(),
    timezone: p.string().length(64).nullable(),
    createdAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
  },
});
export type Club = InferEntity<typeof Club>;
