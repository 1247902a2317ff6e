import { describe, expect, it } from 'vitest'
import { listStaleDeliveries } from '../../src/messaging/delivery-claim.repo.ts'
import { readByKeyset } from '../../src/platform/keyset.ts'
import { planOf, statementsOf, usePlannedDatabase } from '../support/explain.ts'

// The sweeper looks for deliveries nobody works on every 30 s. Deliveries deferred (quiet hours,
// the post-purchase delay) are pending with the time they were written: a campaign deferred
// overnight sat in the sweep's range of delivery_unfinished_idx (by updated_at), and each sweep
// read every one of its rows only to find them not due yet.

// A database of its own: its table holds only what this test seeds (and plans by it).
const planned = usePlannedDatabase()
const pool = () => planned.pool()

/** `count` deliveries `status`, written `written` ago and due `due` from now (SQL intervals). */
async function seed(
  customerId: string,
  tag: string,
  count: number,
  status: string,
  written: string,
  due: string,
) {
  const { rows } = await pool().query<{ id: string }>(
    `insert into delivery (customer_id, dedupe_key, kind, messages, status, updated_at, send_after)
     select $1, $2 || '-' || n, 'campaign', '[]', $3, now() - $4::interval, now() + $5::interval
     from generate_series(1, $6::int) as n
     returning id`,
    [customerId, tag, status, written, due, count],
  )
  return rows.map((r) => r.id)
}

describe('listStaleDeliveries', () => {
  it('does not read the deliveries deferred to later, however many', async () => {
    const { rows } = await pool().query<{ id: string }>(
      `insert into customer (display_name) values ('Yamada') returning id`,
    )
    const customer = rows[0]!.id
    // A campaign written ten minutes ago, deferred to tomorrow morning.
    await seed(customer, 'deferred', 20_000, 'pending', '10 minutes', '12 hours')
    // Lost jobs: rows due an hour ago, rows deferred last night and due since an hour ago, and
    // rows left sending past the lease.
    const lost = await seed(customer, 'lost', 5, 'pending', '1 hour', '-1 hour')
    const dueSince = await seed(customer, 'due-since', 3, 'pending', '10 hours', '-1 hour')
    const abandoned = await seed(customer, 'abandoned', 2, 'sending', '1 hour', '-1 hour')
    // Written a moment ago: its job has not had its chance.
    await seed(customer, 'fresh', 4, 'pending', '0 seconds', '0 seconds')
    await pool().query('analyze delivery')

    const olderThan = new Date(Date.now() - 2 * 60_000)
    const stale = await readByKeyset(
      (after, limit) => listStaleDeliveries(planned.db(), olderThan, limit, after),
      {
        page: 3,
        max: 1_000,
      },
    )
    expect(stale.map((r) => r.id).sort()).toEqual([...lost, ...dueSince, ...abandoned].sort())

    const [statement] = await statementsOf(pool(), (logged) =>
      listStaleDeliveries(logged, olderThan, 1_000),
    )
    const plan = await planOf(pool(), statement!, { analyze: true })
    // What each node of the plan read: the rows it gave and those it read and left out.
    const read = plan
      .filter((node) => node['Node Type'].includes('Scan'))
      .map((node) => ({
        node: `${node['Node Type']} ${node['Index Name'] ?? node['Relation Name'] ?? ''}`,
        rows: (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1),
        removed: node['Rows Removed by Filter'] ?? 0,
      }))
    expect(read.length).toBeGreaterThan(0)
    for (const scan of read) expect(scan.rows + scan.removed, scan.node).toBeLessThan(100)
  })
})
