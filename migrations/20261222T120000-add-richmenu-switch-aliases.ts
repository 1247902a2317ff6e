import { type Kysely, sql } from 'kysely'

/**
 * The aliases a version's `richmenuswitch` areas open. The LINE app links the menu an alias
 * names to whoever taps such an area, so a live version some live switch opens is a tab (another
 * segment's menu too): the check of a bulk link leaves alone someone it finds showing one.
 * Versions written before this have none recorded; a deploy fills those still live.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('richmenu_version')
    .addColumn('switch_aliases', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('richmenu_version').dropColumn('switch_aliases').execute()
}
