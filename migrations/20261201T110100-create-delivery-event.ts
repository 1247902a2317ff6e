import { type Kysely, sql } from 'kysely'

/** Email opens, tracked clicks and unsubscribes, tied to the delivery that caused them. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('delivery_event')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('delivery_id', 'uuid', (col) => col.notNull().references('delivery.id'))
    .addColumn('kind', 'text', (col) =>
      col.notNull().check(sql`kind in ('open', 'click', 'unsubscribe')`),
    )
    .addColumn('url', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('delivery_event_delivery_id_idx')
    .on('delivery_event')
    .column('delivery_id')
    .execute()
  // One unsubscribe per delivery: a repeated one-click POST records nothing new.
  await db.schema
    .createIndex('delivery_event_unsubscribe_key')
    .on('delivery_event')
    .column('delivery_id')
    .unique()
    .where(sql<boolean>`kind = 'unsubscribe'`)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('delivery_event').execute()
}
