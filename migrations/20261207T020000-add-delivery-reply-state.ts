import { type Kysely, sql } from 'kysely'

/**
 * A delivery's reply, written in its own statement around the call: `trying` before it (a row
 * claimed again in that state stopped mid-reply; a reply has no retry key, so it may have
 * arrived and must not be pushed), `refused` once LINE answered that it sent nothing and a push
 * takes over (no reply after that). Null: no reply under way or refused.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('delivery')
    .addColumn('reply_state', 'text', (col) => col.check(sql`reply_state in ('trying', 'refused')`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('reply_state').execute()
}
