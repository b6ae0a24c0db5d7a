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

// References between tenant-owned rows are composite foreign keys, (tenant_id, <ref>_id) →
// (tenant_id, id), so the database itself refuses a row pointing at another tenant's (each
// referenced table has a unique (tenant_id, id) for them). MikroORM declares a foreign key only
// over a relation's own columns, and tenant_id is a scalar property here, so such relations say
// `.createForeignKeyConstraint(false)` and migration Migration20261125174940_tenant_references owns
// the constraints and their ON DELETE rules; test/migrations.test.ts checks both stay true.
