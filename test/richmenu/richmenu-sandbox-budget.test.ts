import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { startKizuna } from '../../src/main/runtime.ts'
import { createHourlyBudget } from '../../src/platform/hourly-budget.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('the hourly rich-menu budget and the sandbox', () => {
  // Every `npm start` without credentials is a new sandbox channel, empty, which gets the shipped
  // menus anew: a developer restarting it 20 times in an hour must not lose them for an hour.
  it('is not spent by the sandbox: its stand-in starts empty each time and keeps LINE limits itself', async () => {
    const prefix = `test-${randomUUID()}`
    const redis = new Redis(TEST_REDIS_URL)
    cleanups.push(async () => redis.disconnect())
    const budget = createHourlyBudget(redis, prefix)
    for (let i = 0; i < 100; i++) await budget.take('richmenu-create')

    const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-sandbox-budget-'))
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
    const env = loadEnv({
      PORT: '0',
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
    })
    const k = await startKizuna(env, { queuePrefix: prefix, log: createLogger('silent') })
    cleanups.push(() => k.stop())

    await eventually(async () => {
      const deployed = await k.deps.db
        .selectFrom('richmenu_version')
        .select('name')
        .where('deployed_at', 'is not', null)
        .execute()
      expect(deployed.map((r) => r.name).sort()).toEqual([
        'linked',
        'member',
        'member-more',
        'new-friend',
        'vip',
      ])
    }, 30_000)
    expect(k.sandbox?.context.state.richMenus.size).toBe(5)
  }, 60_000)
})
