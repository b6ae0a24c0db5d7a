import { Migration } from '@mikro-orm/migrations';

/**
 * The reaction outbox retries a row that fails on its own schedule (attempts, next_attempt_at,
 * last_error), so one row Temporal keeps refusing never holds up the others.
 */
export class Migration20261125234500_outbox_retry extends Migration {

  override name = 'Migration20261125234500_outbox_retry';

  override up(): void | Promise<void> {
    this.addSql(`alter table "reaction_outbox" add "attempts" int not null default 0, add "next_attempt_at" timestamptz null, add "last_error" text null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "reaction_outbox" drop column "attempts", drop column "next_attempt_at", drop column "last_error";`);
  }

}
