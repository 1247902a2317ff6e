import { sql } from 'kysely'
import type { Database } from '../../src/platform/db.ts'

/** Every text, json and array column of every table, as `table.column`. */
async function textColumns(db: Database): Promise<{ table: string; column: string }[]> {
  const { rows } = await sql<{ table: string; column: string }>`
    select table_name as table, column_name as column from information_schema.columns
    where table_schema = current_schema()
      and data_type in ('text', 'character varying', 'json', 'jsonb', 'ARRAY')
      and table_name not like 'kysely_%'
    order by 1, 2`.execute(db)
  return rows
}

/** Where any of `secrets` still appears in the database, as `table.column: value`. */
export async function findAnywhere(db: Database, secrets: string[]): Promise<string[]> {
  const found: string[] = []
  for (const { table, column } of await textColumns(db)) {
    const { rows } = await sql<{ v: string }>`
      select ${sql.ref(column)}::text as v from ${sql.table(table)}
      where ${sql.ref(column)}::text ilike any(${secrets.map((s) => `%${s}%`)}::text[])`.execute(db)
    for (const row of rows) found.push(`${table}.${column}: ${row.v.slice(0, 300)}`)
  }
  return found
}
