import type { Kysely } from 'kysely'

/**
 * When the person made the choice a consent row holds, by the LINE event's own time, for
 * choices made by a postback (null for the others, whose time is `updated_at`). LINE events
 * may be processed out of order (separate requests, retries): an opt-out tapped before an
 * opt-in must not undo it when it is processed after it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('consent').addColumn('decided_at', 'timestamptz').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('consent').dropColumn('decided_at').execute()
}
