import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { entities } from './entities/index.js';
import { migrations } from './migrations/index.js';

export type Orm = MikroORM;

function ormOptions(databaseUrl: string, extra: Partial<Options> = {}): Options {
  return {
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    // Explicit list: migrations run the same under tsx, vitest and a bundled build.
    migrations: { migrationsList: migrations, transactional: true, allOrNothing: true, snapshot: false },
    // Writes go through the services' explicit transactions; reads never flush by surprise.
    allowGlobalContext: false,
    pool: { min: 0, max: 10 },
    ...extra,
  };
}

export async function openOrm(databaseUrl: string, extra: Partial<Options> = {}): Promise<Orm> {
  return MikroORM.init(ormOptions(databaseUrl, extra));
}

export async function migrate(orm: Orm): Promise<string[]> {
  const applied = await orm.migrator.up();
  return applied.map((m) => m.name);
}
