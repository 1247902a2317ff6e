import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { signTrackingToken } from '../../src/tracking/tracking-token.ts'
import { startDatabaseProxy } from '../support/frozen-proxy.ts'
import { startTestKizuna } from '../support/harness.ts'
import { createPrivateDatabase } from '../support/private-database.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** The signing secret, read past Kizuna (which must not load it here). */
async function tokensSecret(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query(`select value from app_secret where name = 'tokens'`)
    return rows[0].value
  } finally {
    await client.end()
  }
}

describe('GET /r/:token while Postgres is unreachable', () => {
  it('still redirects a process that had not followed any link before the outage', async () => {
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const proxy = await startDatabaseProxy(database.url)
    cleanups.push(() => proxy.close())
    const k = await startTestKizuna({ DATABASE_URL: proxy.url })
    cleanups.push(() => k.stopAll())
    const url = 'https://shop.example/sale'
    const secret = await tokensSecret(database.url)
    const token = signTrackingToken<'r'>(secret, ['r', randomUUID(), url])

    proxy.cut()
    const res = await fetch(`${k.baseUrl}/r/${token}`, { redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe(url)
    // A forged token is still refused: the check did not go.
    const forged = signTrackingToken<'r'>('not-our-secret', ['r', randomUUID(), url])
    expect((await fetch(`${k.baseUrl}/r/${forged}`, { redirect: 'manual' })).status).toBe(404)
  }, 60_000)
})
