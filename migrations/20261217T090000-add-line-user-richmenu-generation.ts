import type { Kysely } from 'kysely'

/**
 * Counts the writes to a LINE user's menu record (a link recorded, the record forgotten). A link
 * job records what LINE accepted only if the count is still the one it read before the call, so
 * a forget in between (an unblock: LINE linked nothing to the blocker) stops it even when the
 * record was empty already, which the record's own columns cannot tell.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('line_user')
    .addColumn('richmenu_generation', 'integer', (col) => col.notNull().defaultTo(0))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('line_user').dropColumn('richmenu_generation').execute()
}
