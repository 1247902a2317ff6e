import { type Kysely, sql } from 'kysely'

/**
 * The LINE channel this database serves, by its bot's user id (GET /v2/bot/info): one row at
 * most (`singleton`). Start-up records it when there is none and refuses credentials of another
 * channel; `kizuna line-channel adopt` replaces it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('line_channel')
    .addColumn('singleton', 'boolean', (col) =>
      col.primaryKey().defaultTo(true).check(sql`singleton`),
    )
    .addColumn('bot_user_id', 'text', (col) => col.notNull())
    .addColumn('recorded_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('line_channel').execute()
}
