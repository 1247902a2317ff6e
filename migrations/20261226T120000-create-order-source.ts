import { type Kysely, sql } from 'kysely'

/**
 * The shop systems online orders are recorded under (purchase.source of channel 'online'): one
 * row per name in lower case (`lower_source`), with the spellings recorded. An order naming a
 * source that differs from a recorded one in letter case only is refused: it would record the
 * same order a second time ("shopify" and "Shopify"). Filled by a loose index scan of
 * purchase_channel_source_external_id_key, one index probe a source rather than a read of every
 * purchase; a name recorded in two spellings already keeps both (their orders may be repeats,
 * but which to keep is the shop's call, not a migration's).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('order_source')
    .addColumn('lower_source', 'text', (col) => col.primaryKey())
    .addColumn('spellings', sql`text[]`, (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addCheckConstraint(
      'order_source_spellings_check',
      sql`cardinality(spellings) > 0 and lower_source = lower(spellings[1])`,
    )
    .execute()
  await sql`
    insert into order_source (lower_source, spellings)
    select lower(source), array_agg(source order by source collate "C")
    from (
      with recursive sources (source) as (
        (select source from purchase where channel = 'online' order by source limit 1)
        union all
        select (select p.source from purchase p
            where p.channel = 'online' and p.source > sources.source
            order by p.source limit 1)
        from sources where sources.source is not null
      )
      select source from sources where source is not null
    ) recorded
    group by lower(source)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('order_source').execute()
}
