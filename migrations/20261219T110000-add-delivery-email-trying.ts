import type { Kysely } from 'kysely'

/**
 * When a job was about to hand a delivery's email to the SMTP server, written in a statement of
 * its own before the send, as `reply_state = 'trying'` is for a reply: an email has no retry key,
 * so a claim that finds it on a row left in `sending` (a worker stopped, or Postgres was away,
 * before the outcome was recorded) fails the row as of unknown outcome instead of sending it
 * again. The claim of a row whose outcome was recorded since (back to `pending`) clears it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').addColumn('email_trying_at', 'timestamptz').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('email_trying_at').execute()
}
