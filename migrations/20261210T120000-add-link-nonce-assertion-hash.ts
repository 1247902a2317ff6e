import type { Kysely } from 'kysely'

/**
 * The shop login's assertion a nonce was issued for (sha256 of its signed part): an assertion
 * is single use, so its callback URL met again (browser history, a proxy log) issues nothing.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('link_nonce')
    .addColumn('assertion_hash', 'text', (col) => col.unique())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('link_nonce').dropColumn('assertion_hash').execute()
}
