import type { Job, Worker } from 'bullmq'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { createDeployRichMenus } from '../../src/richmenu/richmenu.jobs.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { cli } from '../support/cli.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN } from '../support/harness.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'
import { lineState, menuJson, menusFolder } from './richmenu-deploy-fixtures.ts'

let cleanups: (() => Promise<void>)[] = []
let deps: Deps
let env: Env
let line: LinePlatform
let folder: Awaited<ReturnType<typeof menusFolder>>

beforeEach(async () => {
  cleanups = []
  ;({ deps, env, line } = await startPrivateDeps(cleanups))
  folder = await menusFolder()
  cleanups.push(() => folder.drop())
})

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const ctx = {} as { job: Job; worker: Worker }

function capturedLog() {
  const lines: Record<string, unknown>[] = []
  const log = createLogger('info', { write: (s: string) => lines.push(JSON.parse(s)) })
  return { log, lines }
}

describe('richmenu.deploy (the job queued at start)', () => {
  it('checks LINE first, deploys, and hands the change to afterChange', async () => {
    await folder.write('main', { alias: 'main', default: true })
    const seen: string[][] = []
    const processor = createDeployRichMenus({
      dir: folder.dir,
      afterChange: async (_deps, summary) => {
        seen.push(summary.created)
      },
    })
    await processor.run(deps, {}, ctx)

    expect(line.requests[0]?.path).toBe('/v2/bot/richmenu/list')
    expect(seen).toEqual([['main']])
    expect(lineState(line).menus).toHaveLength(1)
  })

  it('logs each problem (file and field) and ends without sending anything', async () => {
    const { richMenu: _dropped, ...bad } = menuJson('bad')
    await folder.writeRaw('bad', bad)
    const { log, lines } = capturedLog()
    await createDeployRichMenus({ dir: folder.dir }).run({ ...deps, log }, {}, ctx)

    expect(line.requests).toEqual([])
    const problem = lines.find((l) => l.msg === 'rich menu problem')
    expect(problem).toMatchObject({ field: 'richMenu' })
    expect(problem?.file).toMatch(/bad\/menu\.json$/)
  })

  it('ends quietly when there is no richmenus/ folder', async () => {
    const { log, lines } = capturedLog()
    await createDeployRichMenus({ dir: `${folder.dir}-none` }).run({ ...deps, log }, {}, ctx)
    expect(line.requests).toEqual([])
    expect(lines.map((l) => l.msg)).toEqual([expect.stringMatching(/no rich-menu folder/)])
  })

  it('runs on a real worker of the richmenu queue', async () => {
    await folder.write('main', { alias: 'main' })
    const redis = createWorkerRedis(env.REDIS_URL)
    cleanups.push(async () => redis.disconnect())
    const mailer = createMailer(env, deps.db, { sandbox: false })
    const processors = {
      ...createProcessors(deps, { mailer }),
      'richmenu.deploy': createDeployRichMenus({ dir: folder.dir }),
    }
    const workers = startWorkers(deps, processors, redis, { queues: ['richmenu'] })
    cleanups.push(() => workers.close())
    await deps.queues.enqueue('richmenu.deploy', {}, { jobId: jobIds.richmenuDeploy('test') })
    await eventually(async () => {
      const row = await deps.db
        .selectFrom('richmenu_version')
        .select(['deployed_at', 'line_rich_menu_id'])
        .executeTakeFirst()
      expect(row?.deployed_at).not.toBeFalsy()
      expect(lineState(line).aliases).toEqual({ main: row?.line_rich_menu_id })
    })
  })
})

describe('kizuna richmenu deploy', () => {
  const lineEnv = () => ({
    DATABASE_URL: env.DATABASE_URL ?? '',
    LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
    LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    REDIS_URL: env.REDIS_URL,
    QUEUE_PREFIX: deps.queues.prefix,
  })
  /** The relink jobs the CLI queued for the workers (none run in this test). */
  const relinkJobs = async () =>
    (
      await deps.queues.byName.richmenu.getJobs([
        'waiting',
        'delayed',
        'active',
        'prioritized',
        'completed',
        'failed',
      ])
    ).filter((j) => j.name === 'richmenu.relink')

  it('prints one line per menu, and unchanged on the second run', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    await folder.write('vip', { alias: 'vip', shade: 2 })
    const first = await cli(['richmenu', 'deploy', '--dir', folder.dir], lineEnv())
    expect(first.stderr).toBe('re-linking queued: the workers link people to their new menus\n')
    expect(first).toMatchObject({ code: 0, stdout: 'created   main\ncreated   vip\n' })
    expect(await relinkJobs()).toHaveLength(1)

    await folder.remove('vip')
    const second = await cli(['richmenu', 'deploy', '--dir', folder.dir], lineEnv())
    expect(second).toMatchObject({
      code: 0,
      stdout: 'unchanged main\nretired   vip\ndeleted   vip\n',
    })
    expect(lineState(line).menus).toHaveLength(1)
  })

  it('prints the problems and exits 1', async () => {
    const { richMenu: _dropped, ...bad } = menuJson('bad')
    await folder.writeRaw('bad', bad)
    const res = await cli(['richmenu', 'deploy', '--dir', folder.dir], lineEnv())
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/bad\/menu\.json: richMenu: /)
    expect(res.stderr).toMatch(/nothing was sent to LINE/)
    expect(line.requests).toEqual([])
    expect(await relinkJobs()).toEqual([])
  })

  it('says that npm start deploys to the sandbox when there are no LINE credentials', async () => {
    const res = await cli(['richmenu', 'deploy', '--dir', folder.dir], {
      DATABASE_URL: env.DATABASE_URL ?? '',
    })
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /no LINE credentials.*`npm start` deploys richmenus\/ to its LINE sandbox/,
    )
  })
})
