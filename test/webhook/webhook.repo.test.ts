import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deleteProcessedWebhookEvents } from '../../src/webhook/webhook.repo.ts'
import { planOf, statementsOf, usePlannedDatabase } from '../support/explain.ts'

// The nightly prune deletes processed webhook events past retention, a batch at a time. Only
// pending events have an index by time: a batch that picked its rows by received_at read the
// whole table (a sequential scan, each batch), on what is the largest table of a busy shop.

const DAY = 86_400_000
// A database of its own: its table holds only what this test seeds (and plans by it).
const planned = usePlannedDatabase()
const pool = () => planned.pool()

/** A time-ordered id (uuid_v7's) for `at`, in SQL. */
const v7At = (at: string) => `encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
  placing substring(int8send(floor(extract(epoch from ${at}) * 1000)::bigint) from 3)
  from 1 for 6), 52, 1), 53, 1), 'hex')::uuid`

/**
 * `count` events received `fromDays`..`toDays` ago, spread evenly, with `status`; `id` the SQL of
 * their ids (`at` their received_at).
 */
async function seed(
  count: number,
  fromDays: number,
  toDays: number,
  status: string,
  id: (at: string) => string = v7At,
) {
  const tag = randomUUID()
  await pool().query(
    `insert into webhook_event
       (id, webhook_event_id, type, mode, occurred_at, received_at, status, payload)
     select ${id('t.at')}, $1 || '-' || n, 'message', 'active', t.at, t.at, $2, '{}'
     from generate_series(1, $3::int) as n,
          lateral (select now() - make_interval(
            secs => ($4::float8 - ($4::float8 - $5::float8) * n / $3::int) * 86400) as at) as t`,
    [tag, status, count, fromDays, toDays],
  )
  return tag
}

const left = async (tag: string) =>
  Number(
    (
      await pool().query(`select count(*) from webhook_event where webhook_event_id like $1`, [
        `${tag}-%`,
      ])
    ).rows[0].count,
  )

describe('deleteProcessedWebhookEvents', () => {
  it('deletes processed events past retention by a range of the time-ordered ids, old random ids too', async () => {
    // A month of events, the night's prune deleting the oldest day of them.
    const recent = await seed(40_000, 29.5, 0, 'done')
    const old = await seed(1_500, 31, 30.1, 'done')
    const oldFailed = await seed(200, 40, 30.5, 'failed')
    const oldPending = await seed(50, 40, 30.5, 'pending')
    // Events stored before ids were time-ordered (20261201T140000): random ids (version 4),
    // nearly all of them above every time-ordered id (these all are), and one below the night's.
    const random = await seed(
      300,
      400,
      100,
      'done',
      () => `('a' || substr(replace(gen_random_uuid()::text, '-', ''), 2))::uuid`,
    )
    const randomLow = await seed(
      1,
      400,
      400,
      'done',
      () => `('000000000001' || substr(replace(gen_random_uuid()::text, '-', ''), 13))::uuid`,
    )
    await pool().query('analyze webhook_event')

    // The statements a prune runs, each explained on the table as seeded.
    const olderThan = new Date(Date.now() - 30 * DAY)
    const statements = await statementsOf(pool(), (logged) =>
      logged
        .transaction()
        .execute(async (trx) => {
          await deleteProcessedWebhookEvents(trx, olderThan, { batch: 1_000 })
          throw new Error('rolled back')
        })
        .catch((error: Error) => expect(error.message).toBe('rolled back')),
    )
    const deletes = statements.filter((q) => /\bdelete\b/i.test(q.sql))
    expect(deletes.length).toBeGreaterThan(1)
    for (const q of deletes) {
      const plan = await planOf(pool(), q)
      const seqScans = plan.filter(
        (node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'webhook_event',
      )
      expect(seqScans, q.sql).toEqual([])
    }

    const deleted = await deleteProcessedWebhookEvents(planned.db(), olderThan, { batch: 1_000 })
    expect(deleted).toBe(1_500 + 200 + 300 + 1)
    expect(await left(old)).toBe(0)
    expect(await left(oldFailed)).toBe(0)
    expect(await left(random)).toBe(0)
    expect(await left(randomLow)).toBe(0)
    expect(await left(oldPending)).toBe(50)
    expect(await left(recent)).toBe(40_000)
    // Nothing more to delete.
    expect(await deleteProcessedWebhookEvents(planned.db(), olderThan, { batch: 1_000 })).toBe(0)
  })
})
