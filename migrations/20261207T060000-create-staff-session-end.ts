import { type Kysely, sql } from 'kysely'

/**
 * Staff sessions ended by logging out. The session cookie is signed and lives 8 hours; without
 * this row a copy taken before logout would keep working until it expires. A row is only needed
 * until the session would have expired anyway, so `expires_at` lets old rows be deleted.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('staff_session_end')
    .addColumn('session_id', 'uuid', (col) => col.primaryKey())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('staff_session_end_expires_at_idx')
    .on('staff_session_end')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('staff_session_end').execute()
}
