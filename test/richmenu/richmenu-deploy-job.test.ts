import type { Job, Worker } from 'bullmq'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createHourlyBudget } from '../../src/platform/hourly-budget.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import {
  createDeployRichMenus,
  RESUME_AFTER_LINE_429_MS,
} from '../../src/richmenu/richmenu.jobs.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
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

  it('warns and ends when there is no richmenus/ folder', async () => {
    const { log, lines } = capturedLog()
    await createDeployRichMenus({ dir: `${folder.dir}-none` }).run({ ...deps, log }, {}, ctx)
    expect(line.requests).toEqual([])
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, msg: expect.stringMatching(/no rich-menu folder/) }),
    ])
  })

  it('warns and removes nothing when richmenus/ has no menus (a bind mount left empty)', async () => {
    await folder.write('main', { alias: 'main', default: true })
    await createDeployRichMenus({ dir: folder.dir }).run(deps, {}, ctx)
    const before = lineState(line)
    await folder.remove('main')
    line.clearRequests()
    const { log, lines } = capturedLog()
    const relinks: string[][] = []
    const processor = createDeployRichMenus({
      dir: folder.dir,
      afterChange: async (_deps, summary) => {
        relinks.push(summary.retired)
      },
    })
    await processor.run({ ...deps, log }, {}, ctx)

    expect(line.requests).toEqual([])
    expect(lineState(line)).toEqual(before)
    expect(relinks).toEqual([])
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, msg: expect.stringMatching(/^no menus in /) }),
    ])
    const rows = await deps.db.selectFrom('richmenu_version').select('retired_at').execute()
    expect(rows).toEqual([{ retired_at: null }])
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

/** Uses up this channel's 100 menu creates of the hour, as other deploys would have. */
async function useUpCreates() {
  const budget = createHourlyBudget(deps.redis, deps.queues.prefix)
  for (let i = 0; i < 100; i++) await budget.take('richmenu-create')
}

const createRequests = () => line.requestsTo('POST', '/v2/bot/richmenu')

/** The deploy jobs queued to resume a stopped deploy. */
const resumeJobs = async () =>
  (await deps.queues.byName.richmenu.getJobs(['delayed', 'waiting'])).filter(
    (j) => j.name === 'richmenu.deploy',
  )

describe("LINE's 100 menu creates an hour", () => {
  it('counts every create in the shared budget', async () => {
    await folder.write('main', { alias: 'main', shade: 1 })
    await folder.write('vip', { alias: 'vip', shade: 2 })
    await createDeployRichMenus({ dir: folder.dir }).run(deps, {}, ctx)
    expect(createRequests()).toHaveLength(2)
    const key = `${deps.queues.prefix}:line-limit-hourly:richmenu-create`
    expect(await deps.redis.zcard(key)).toBe(2)
  })

  it('sends no create once the hour is used up, and queues the deploy for when there is room', async () => {
    await folder.write('main', { alias: 'main', default: true })
    await useUpCreates()
    const { log, lines } = capturedLog()
    await createDeployRichMenus({ dir: folder.dir }).run({ ...deps, log }, {}, ctx)

    expect(createRequests()).toEqual([])
    const [resume, ...more] = await resumeJobs()
    expect(more).toEqual([])
    expect(resume?.opts.delay).toBeGreaterThan(3_590_000)
    expect(resume?.opts.delay).toBeLessThanOrEqual(3_600_000)
    const paused = lines.find((l) => String(l.msg).startsWith('rich menu deploy paused'))
    expect(paused?.msg).toMatch(/before using more than LINE allows at "create main"/)
    expect(Date.parse(String(paused?.resumeAt))).toBeGreaterThan(Date.now() + 3_590_000)
    const row = await deps.db
      .selectFrom('richmenu_version')
      .select(['deployed_at', 'line_rich_menu_id'])
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ deployed_at: null, line_rich_menu_id: null })
  })

  it("queues the deploy again 15 minutes later when LINE's own 429 stops it", async () => {
    await folder.write('a-menu', { shade: 1 })
    await folder.write('b-menu', { shade: 2 })
    line.setRateLimit('POST /v2/bot/richmenu', { capacity: 1, perMs: 3_600_000 })
    await createDeployRichMenus({ dir: folder.dir }).run(deps, {}, ctx)
    line.setRateLimit('POST /v2/bot/richmenu', null)

    expect(createRequests().map((r) => r.status)).toEqual([200, 429])
    const [resume] = await resumeJobs()
    expect(resume?.opts.delay).toBe(RESUME_AFTER_LINE_429_MS)
    expect(RESUME_AFTER_LINE_429_MS).toBe(15 * 60_000)
  })
})

describe('kizuna richmenu deploy', () => {
  /** The command's environment for the channel `at` stands in for. */
  const lineEnv = (at = line) => ({
    DATABASE_URL: env.DATABASE_URL ?? '',
    LINE_CHANNEL_SECRET: at.channelSecret,
    LINE_CHANNEL_ACCESS_TOKEN: at.channelAccessToken,
    LINE_API_BASE_URL: at.apiBaseUrl,
    LINE_DATA_API_BASE_URL: at.dataApiBaseUrl,
    REDIS_URL: env.REDIS_URL,
    QUEUE_PREFIX: deps.queues.prefix,
  })
  const deploy = (at = line, ...options: string[]) =>
    cli(['richmenu', 'deploy', '--dir', folder.dir, ...options], lineEnv(at))
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

  it('creates the menus a channel lacks: lost by its stand-in (a sandbox restarted), or deleted by hand', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    await folder.write('vip', { alias: 'vip', shade: 2 })
    // The menus went to the channel (a sandbox run's stand-in, say)…
    const first = await deploy()
    expect(first).toMatchObject({ code: 0, stdout: 'created   main\ncreated   vip\n' })

    // …whose next stand-in starts without them: before, `unchanged` twice and no call at all.
    const other = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => other.close())
    const second = await deploy(other)
    expect(second).toMatchObject({ code: 0, stdout: 'created   main\ncreated   vip\n' })
    expect(other.requests.slice(0, 2).map((r) => r.path)).toEqual([
      '/v2/bot/info',
      '/v2/bot/richmenu/list',
    ])
    expect(lineState(other).menus).toHaveLength(2)
    expect(Object.keys(lineState(other).aliases).sort()).toEqual(['main', 'vip'])
    expect(lineState(other).defaultRichMenuId).not.toBeNull()

    // A menu deleted in LINE's console is created again; the other makes no call but the list.
    const vipId = lineState(other).aliases.vip as string
    const removed = await fetch(`${other.apiBaseUrl}/v2/bot/richmenu/${vipId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${other.channelAccessToken}` },
    })
    expect(removed.status).toBe(200)
    const before = other.requests.length
    const third = await deploy(other)
    expect(third).toMatchObject({ code: 0, stdout: 'created   vip\nunchanged main\n' })
    expect(lineState(other).menus).toHaveLength(2)
    expect(other.requests.slice(before, before + 2).map((r) => r.path)).toEqual([
      '/v2/bot/info',
      '/v2/bot/richmenu/list',
    ])
  })

  it("refuses another channel's credentials, naming both bots: no call but asking LINE whose they are", async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    expect((await deploy()).stdout).toBe('created   main\n')
    const menus = await deps.db
      .selectFrom('richmenu_version')
      .select(['id', 'line_rich_menu_id'])
      .orderBy('id')
      .execute()

    // The credentials of another channel (staging's, say) on this channel's database.
    const other = await startLinePlatform({
      channelSecret: `${TEST_CHANNEL_SECRET}-other`,
      channelAccessToken: `${TEST_CHANNEL_TOKEN}-other`,
    })
    cleanups.push(() => other.close())
    const res = await deploy(other)
    expect(res).toMatchObject({ code: 1, stdout: '' })
    expect(res.stderr).toMatch(
      new RegExp(
        `^error: The database at DATABASE_URL \\([^)]*\\) serves another LINE channel: it ` +
          `records LINE bot ${line.botUserId} .* are LINE bot ${other.botUserId}'s\\. Nothing ` +
          'deployed: no call went to LINE but that check\\. .*`npx kizuna line-channel adopt`',
      ),
    )
    expect(other.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v2/bot/info'])
    // The channel's menus are remembered (before, forgotten: the other channel lacked them).
    expect(
      await deps.db
        .selectFrom('richmenu_version')
        .select(['id', 'line_rich_menu_id'])
        .orderBy('id')
        .execute(),
    ).toEqual(menus)
    expect(await relinkJobs()).toHaveLength(1)
  })

  it('trusts its records without asking LINE when told --no-check-line', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    expect((await deploy()).stdout).toBe('created   main\n')
    const before = line.requests.length
    expect(await deploy(line, '--no-check-line')).toMatchObject({
      code: 0,
      stdout: 'unchanged main\n',
    })
    // Only asked whose channel the credentials are (always: see line-channel.test.ts).
    expect(line.requests.slice(before).map((r) => r.path)).toEqual(['/v2/bot/info'])
  })

  it('refuses a folder with no menus and exits 1; --remove-all removes every menu', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    expect(await deploy()).toMatchObject({ code: 0, stdout: 'created   main\n' })
    await folder.remove('main')
    const refused = await deploy()
    expect(refused).toMatchObject({ code: 1, stdout: '' })
    expect(refused.stderr).toBe(
      `error: no menus in ${folder.dir}: a deploy of none would retire every menu and unlink ` +
        'every friend; nothing was sent to LINE ' +
        '(`kizuna richmenu deploy --remove-all` removes them)\n',
    )
    expect(lineState(line).menus).toHaveLength(1)

    const removed = await deploy(line, '--remove-all')
    expect(removed).toMatchObject({ code: 0, stdout: 'retired   main\ndeleted   main\n' })
    expect(lineState(line)).toEqual({ menus: [], aliases: {}, defaultRichMenuId: undefined })
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

  it("stops before a create LINE's hourly limit would refuse, and says when to run it again", async () => {
    await folder.write('main', { alias: 'main', default: true })
    await useUpCreates()
    const res = await cli(['richmenu', 'deploy', '--dir', folder.dir], lineEnv())
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /stopped before using more than LINE allows at "create main".*when run again in 60 min/,
    )
    expect(createRequests()).toEqual([])
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
