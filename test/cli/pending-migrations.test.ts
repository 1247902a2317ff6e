import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'
import { createPrivateDatabase } from '../support/private-database.ts'

// A command run from a newer checkout against a shared DATABASE_URL must not migrate the
// database under the web and worker processes still running the older code: only `migrate` and
// start-up apply migrations there. (The embedded database, one process's own, is migrated by
// any command, as before.)
let database: Awaited<ReturnType<typeof createPrivateDatabase>>
beforeAll(async () => {
  database = await createPrivateDatabase()
})
afterAll(async () => {
  await database?.drop()
})

async function tables(): Promise<number> {
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  try {
    const { rows } = await client.query(
      "select count(*)::int as n from information_schema.tables where table_schema = 'public'",
    )
    return rows[0].n
  } finally {
    await client.end()
  }
}

describe('CLI commands against a DATABASE_URL with pending migrations', () => {
  it('refuse, naming the first pending migration and `kizuna migrate`, and change nothing', async () => {
    const res = await cli(['stores', 'list'], { DATABASE_URL: database.url })
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /error: the database \(DATABASE_URL\) lacks \d+ migrations? of this checkout \(the first: 20261123T\d{6}-[a-z-]+\); run `npx kizuna migrate`/,
    )
    expect(await tables()).toBe(0)
  })

  it('run once `kizuna migrate` applied them', async () => {
    expect((await cli(['migrate'], { DATABASE_URL: database.url })).code).toBe(0)
    const res = await cli(['stores', 'add', '--code', 'P001', '--name', 'Pending'], {
      DATABASE_URL: database.url,
    })
    expect(res.code).toBe(0)
    expect((await cli(['stores', 'list'], { DATABASE_URL: database.url })).stdout).toContain('P001')
  })
})
