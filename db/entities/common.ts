import { p } from '@mikro-orm/core';
import { v7 as uuidv7 } from 'uuid';

// Columns every tenant-owned row carries. The tenant id is the JWT's `tenantId` claim; every query
// filters on it, and every index that serves a list query starts with it.
export const tenantOwned = {
  // UUIDv7: time-ordered, so newest-first lists page by id alone.
  id: p.uuid().primary().onCreate(() => uuidv7()).defaultRaw('gen_random_uuid()'),
  tenantId: p.string().length(100),
  createdAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
  updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()).defaultRaw('now()'),
};
