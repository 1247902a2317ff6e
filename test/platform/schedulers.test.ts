import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'

let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna({ SWEEP_INTERVAL_MS: '45000' })
})
afterAll(async () => {
  await k.stopAll()
})

describe('job schedulers', () => {
  it('workers register the sweeper and the nightly spend refresh in Redis', async () => {
    const schedulers = await k.deps.queues.byName.maintenance.getJobSchedulers()
    const byKey = Object.fromEntries(schedulers.map((s) => [s.key, s]))
    expect(byKey.sweeper?.every).toBe(45000)
    expect(byKey['refresh-spend']).toMatchObject({ pattern: '15 4 * * *', tz: 'Asia/Tokyo' })
  })
})
