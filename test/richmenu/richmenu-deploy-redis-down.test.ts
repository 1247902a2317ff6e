import { describe, expect, it } from 'vitest'
import { REDIS_WAIT_MS } from '../../src/platform/line-pacing.ts'
import { cli } from '../support/cli.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN } from '../support/harness.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import { useDeployWorld } from './richmenu-deploy-fixtures.ts'

const world = useDeployWorld()

describe('kizuna richmenu deploy while Redis goes away', () => {
  it('exits 1 within seconds, naming REDIS_URL, instead of waiting for a slot while holding the deploy lock', async () => {
    const { deps, line, folder } = world
    const redis = await startPrivateRedis()
    try {
      await folder.write('main', { alias: 'main', default: true })
      // Redis goes away while LINE takes the menu's image: the alias call after it is paced.
      line.failNext({
        method: 'POST',
        path: '/v2/bot/richmenu/{richMenuId}/content',
        match: () => {
          void redis.stop()
          return true
        },
        carriedOut: true,
        status: 200,
        body: {},
        timeoutMs: 300,
      })
      // Killed if still running long past the bound (its code is then null, not 1): it waited
      // for the outage instead of giving up.
      const res = await cli(
        ['richmenu', 'deploy', '--dir', folder.dir],
        {
          DATABASE_URL: deps.env.DATABASE_URL ?? '',
          LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
          LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
          LINE_API_BASE_URL: line.apiBaseUrl,
          LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
          REDIS_URL: redis.url,
        },
        { timeoutMs: REDIS_WAIT_MS + 30_000 },
      )
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(/error: .*Redis \(REDIS_URL\).*did not answer/)
      // Nothing after the image went to LINE.
      expect(line.requestsTo('POST', '/v2/bot/richmenu/alias')).toEqual([])
    } finally {
      await redis.stop()
    }
  }, 60_000)
})
