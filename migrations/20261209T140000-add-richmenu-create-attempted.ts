import type { Kysely } from 'kysely'

/**
 * When a deploy last asked LINE to create the version's menu and has not yet recorded its id.
 * A create whose answer was lost (a timeout, a crash) may still have made the menu: the next
 * deploy looks for it in LINE's list before creating another.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('richmenu_version')
    .addColumn('line_create_attempted_at', 'timestamptz')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('richmenu_version').dropColumn('line_create_attempted_at').execute()
}
