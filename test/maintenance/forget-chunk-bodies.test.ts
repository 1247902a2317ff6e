import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { forgetChunkBodies } from '../../src/maintenance/forget-chunk-bodies.jobs.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

// A multicast chunk's stored request names up to 500 friends' LINE user ids. It is kept only to
// repeat the request under its retry key, which LINE honours for 24 hours from the first call
// (made when the chunk was made); past that nothing repeats it, so nightly the bodies go.
let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k?.stopAll()
})

const HOUR = 3_600_000

/** A chunk made `ageMs` ago whose request names `uid`. */
async function chunk(uid: string, ageMs: number): Promise<string> {
  const body = JSON.stringify({ to: [uid], messages: [{ type: 'text', text: 'hi' }] })
  const row = await k.deps.db
    .insertInto('multicast_request')
    .values({ body, created_at: new Date(Date.now() - ageMs) })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

async function bodies(ids: string[]) {
  const rows = await k.deps.db
    .selectFrom('multicast_request')
    .select(['id', 'body'])
    .where('id', 'in', ids)
    .execute()
  return Object.fromEntries(rows.map((r) => [r.id, r.body !== null]))
}

describe('maintenance.forget-chunk-bodies', () => {
  it('drops the requests of chunks made over a day ago, keeps younger ones, and changes nothing when run again', async () => {
    const uid = `U${randomUUID().replaceAll('-', '')}`
    const old = await chunk(uid, 25 * HOUR)
    const young = await chunk(uid, 22 * HOUR)
    await k.deps.queues.enqueueBulk('maintenance.forget-chunk-bodies', [
      { data: {}, jobId: `forget-chunk-bodies-${uid}` },
    ])
    await eventually(async () =>
      expect(await bodies([old, young])).toEqual({ [old]: false, [young]: true }),
    )
    await forgetChunkBodies.run(k.deps, {}, undefined as never)
    expect(await bodies([old, young])).toEqual({ [old]: false, [young]: true })
  })
})
