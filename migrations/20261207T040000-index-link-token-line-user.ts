import type { Kysely } from 'kysely'

/**
 * The link tokens of one LINE account: the daily cap on wrong one-time codes counts a LINE
 * account's codes through its link tokens on every code entered.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('link_token_line_user_id_idx')
    .on('link_token')
    .column('line_user_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('link_token_line_user_id_idx').execute()
}
