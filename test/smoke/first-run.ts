import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { launchChromium } from '../support/browser.ts'
import { TEST_REDIS_URL } from '../support/env.ts'

export type FirstRun = { k: Kizuna; browser: Browser }

/**
 * Registers the hooks of a first-run test file: Kizuna as `npm start` runs it with nothing set
 * (embedded database in a temporary DATA_DIR, the LINE sandbox, the shipped richmenus/), on
 * PORT=0 as the README allows (links must still name the real port), and one Chromium. Read the
 * fields in the tests.
 */
export function useFirstRun(): FirstRun {
  const run = {} as FirstRun
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })
  beforeAll(async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-first-run-'))
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
    const env = loadEnv({
      PORT: '0',
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
    })
    const k = await startKizuna(env, {
      queuePrefix: `test-${randomUUID()}`,
      log: createLogger('silent'),
    })
    cleanups.push(() => k.stop())
    run.k = k
    run.browser = await launchChromium()
    cleanups.push(() => run.browser.close())
  })
  return run
}
