import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export async function findMaintenanceRun(db: Db, name: string) {
  return db
    .selectFrom('maintenance_run')
    .select(['last_success_at', 'state'])
    .where('name', '=', name)
    .executeTakeFirst()
}

/** Records a successful run that started at `startedAt`, with what it ran with. */
export async function recordMaintenanceRun(
  db: Db,
  name: string,
  startedAt: Date,
  state: Record<string, unknown>,
): Promise<void> {
  const values = { last_success_at: startedAt, state: JSON.stringify(state) }
  await db
    .insertInto('maintenance_run')
    .values({ name, ...values })
    .onConflict((oc) => oc.column('name').doUpdateSet({ ...values, updated_at: new Date() }))
    .execute()
}

/** The database's clock (now() in SQL): the one purchases age by. */
export async function readDatabaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(db)
  const row = rows[0]
  if (!row) throw new Error('select now() returned no row')
  return row.now
}

/** Those of `names` whose last success started within `withinMs` of now(), by the database's clock. */
export async function findRecentMaintenanceRuns(
  db: Db,
  names: readonly string[],
  withinMs: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('maintenance_run')
    .select('name')
    .where('name', 'in', names)
    .where('last_success_at', '>', sql<Date>`now() - make_interval(secs => ${withinMs / 1000})`)
    .execute()
  return rows.map((row) => row.name)
}
