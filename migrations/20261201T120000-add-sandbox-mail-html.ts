import type { Kysely } from 'kysely'

/** The sandbox mailbox keeps a message's HTML part and headers too (shown on /sandbox/mail). */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('sandbox_mail')
    .addColumn('html', 'text')
    .addColumn('headers', 'jsonb')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sandbox_mail').dropColumn('html').dropColumn('headers').execute()
}
