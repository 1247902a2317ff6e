import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('first run: embedded PGlite and the built-in LINE sandbox', () => {
  it('starts with no credentials, migrates, and welcomes a simulated friend end to end', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-smoke-'))
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
    const env = loadEnv({
      PORT: '0',
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
    })
    const prefix = `test-${randomUUID()}`
    let k: Kizuna | undefined = await startKizuna(env, {
      queuePrefix: prefix,
      log: createLogger('silent'),
    })
    cleanups.push(async () => {
      await k?.stop()
    })
    expect(k.sandbox).not.toBeNull()
    const sandbox = k.sandbox!

    const ready = await fetch(`${k.baseUrl}/readyz`)
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })

    const user = sandbox.users.create({ displayName: 'Smoke Tester' })
    expect((await sandbox.users.follow(user.userId)).status).toBe(200)
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(1))
    await eventually(async () => {
      const row = await k!.deps.db
        .selectFrom('line_user')
        .select(['status', 'display_name'])
        .where('line_uid', '=', user.userId)
        .executeTakeFirst()
      expect(row).toEqual({ status: 'friend', display_name: 'Smoke Tester' })
    })

    const page = await fetch(`${k.baseUrl}/sandbox`)
    expect(page.status).toBe(200)
    const html = await page.text()
    expect(html).toContain('Smoke Tester')
    expect(html).toContain('友だち追加ありがとうございます')

    // The embedded database keeps its data across a restart.
    await k.stop()
    k = await startKizuna(env, { queuePrefix: prefix, log: createLogger('silent') })
    const count = await k.deps.db
      .selectFrom('line_user')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow()
    expect(count.n).toBe('1')
  }, 60_000)
})
