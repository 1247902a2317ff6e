import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb } from '../../src/platform/db.ts'
import { executePrepared, PREPARE } from '../../src/platform/prepared.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// One connection, so the session's prepared statements are visible to the next query.
const db = await createDb({ DATABASE_URL: TEST_DATABASE_URL, DATA_DIR: '' }, { poolSize: 1 })
afterAll(() => db.destroy())

const preparedStatements = async () =>
  (await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(db)).rows

describe('prepared statements', () => {
  it('prepares marked statements once per connection and answers them as usual', async () => {
    const query = sql<{ n: number }>`select ${41}::int + 1 as n`
    const first = await executePrepared(db, query)
    const again = await executePrepared(db, sql<{ n: number }>`select ${1}::int + 1 as n`)
    expect(first.rows).toEqual([{ n: 42 }])
    expect(again.rows).toEqual([{ n: 2 }])
    const marked = (await preparedStatements()).filter((s) => s.statement.startsWith(PREPARE))
    expect(marked).toHaveLength(1)
    expect(marked[0]?.statement).toContain('select $1::int + 1 as n')
  })

  it('leaves unmarked statements unprepared', async () => {
    await sql`select 'plain' as x`.execute(db)
    const texts = (await preparedStatements()).map((s) => s.statement)
    expect(texts.some((t) => t.includes("'plain'"))).toBe(false)
  })
})
