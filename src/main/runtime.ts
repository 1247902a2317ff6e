import { randomBytes } from 'node:crypto'
import type { Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import type { Hono } from 'hono'
import { createApp } from '../app.ts'
import { type Env, isSandbox } from '../config/env.ts'
import { createMailer } from '../email/mailer.ts'
import { jobIds } from '../jobs.ts'
import { lineChannelTableExists } from '../line-channel/line-channel.repo.ts'
import type { LineChannelMismatch } from '../line-channel/line-channel.service.ts'
import { type ChannelWatch, checkLineChannelAtStart } from '../line-channel/line-channel-watch.ts'
import { catchUpNightlyRuns } from '../maintenance/nightly.service.ts'
import { createOpsApp } from '../ops/ops.app.ts'
import type { Deps } from '../platform/deps.ts'
import { tuneHttpClient } from '../platform/http-client.ts'
import { assertRedisReachable, createWorkerRedis, RedisUnreachable } from '../platform/redis.ts'
import { getAppSecret } from '../platform/secrets.ts'
import { scheduleSweeper, startWorkers, type Workers } from '../platform/workers.ts'
import type { LinePlatform } from '../sandbox/platform.ts'
import { SANDBOX_BOT_USER_ID } from '../sandbox/sandbox-channel.ts'
import { createInbox } from '../webhook/inbox.ts'
import { closeDeps, createDeps, type DepsOptions } from './deps.ts'
import { explainDatabaseError, migrateToLatest } from './migrate.ts'
import { createProcessors } from './processors.ts'

export type Kizuna = {
  deps: Deps
  /** The port the server listens on: the whole app, or only the ops routes for ROLE=worker. */
  port: number
  /** The address it listens on: loopback only in sandbox mode, every interface otherwise. */
  host: string
  baseUrl: string
  sandbox: LinePlatform | null
  stop(): Promise<void>
  /** What a stop under way is waiting for (for a shutdown that takes too long to say). */
  stopWaitsFor(): string
  /**
   * Resolves once Kizuna stopped itself, all closed, with why: a channel check after start-up
   * (LINE did not answer the one at start) found the credentials to be another channel's than
   * the database's (LineChannelMismatch). `npm start` then exits 1. Never, otherwise.
   */
  halted: Promise<Error>
}

/**
 * Starts Kizuna for a role: checks Redis, opens the database, checks that the LINE channel is the
 * one the database serves (another one's stops start-up) and applies migrations (the check after
 * them while the database has no table recording its channel: it records the first then), then
 * serves HTTP (only the ops routes for ROLE=worker) and runs workers (unless ROLE=web). Without LINE credentials it first starts the built-in LINE sandbox.
 */
export type StartOptions = DepsOptions & {
  /** Deploy richmenus/ when workers start (the default); tests with menus of their own say no. */
  deployRichMenus?: boolean
  /**
   * Queue the nightly jobs missed (catchUpNightlyRuns) when workers start, and on a Redis
   * reconnect (the default); tests, which share a database, say no.
   */
  catchUpNightly?: boolean
  /**
   * A stop asked for during start-up (a SIGTERM while migrations run): start-up stops at its
   * next safe point, closes what it opened and rejects with StartStopped.
   */
  signal?: AbortSignal
  /** Told each step of start-up as it begins (for a shutdown that has to say what it waits for). */
  onStep?: (step: string) => void
  /** How often ROLE=web started without Redis says so again while it waits (5 min). */
  degradedReminderMs?: number
  /**
   * When the LINE channel is checked again after a start LINE did not answer the check of
   * (1 min, then twice as long each time up to 10 min: watchLineChannel).
   */
  lineChannelRecheckMs?: number
}

/** Start-up stopped at a safe point because StartOptions.signal asked it to; all is closed. */
export class StartStopped extends Error {
  override name = 'StartStopped'
  constructor() {
    super('start-up stopped on request')
  }
}

export async function startKizuna(envIn: Env, opts: StartOptions = {}): Promise<Kizuna> {
  // What start-up opened, closed in reverse order when it stops or fails.
  const opened: (() => unknown)[] = []
  // Taken out as they are closed: a close that throws inside step() is not run again by the
  // catch's closeOpened, nor are the others closed twice in the wrong order.
  const closeOpened = async () => {
    for (const close of opened.splice(0).reverse()) await close()
  }
  /** A safe point between steps: nothing is half done, so a stop asked for happens here. */
  const step = async (name: string) => {
    if (opts.signal?.aborted) {
      await closeOpened()
      throw new StartStopped()
    }
    opts.onStep?.(name)
  }
  try {
    return await startSteps(envIn, opts, step, opened)
  } catch (error) {
    if (!(error instanceof StartStopped)) {
      // The failure is what the caller must hear about, not a close that failed after it.
      await closeOpened().catch((err: unknown) => {
        opts.log?.warn({ err }, 'closing after a failed start-up failed too')
      })
    }
    throw error
  }
}

async function startSteps(
  envIn: Env,
  opts: StartOptions,
  step: (name: string) => Promise<void>,
  opened: (() => unknown)[],
): Promise<Kizuna> {
  await step('checking Redis')
  const redisDown = await checkRedis(envIn)
  let env = envIn
  let sandbox: LinePlatform | null = null
  let sandboxUi: Hono | undefined
  if (isSandbox(env)) {
    await step('starting the LINE sandbox')
    // Loaded only in sandbox mode: the stand-in and its pages are ~25 MB of modules that a
    // process talking to LINE itself never needs.
    const [{ startLinePlatform }, { createSandboxUi }] = await Promise.all([
      import('../sandbox/platform.ts'),
      import('../sandbox/ui.routes.ts'),
    ])
    // New credentials each start, as a channel's reissued ones; one channel all the same.
    const platform = await startLinePlatform({
      channelSecret: randomBytes(16).toString('hex'),
      channelAccessToken: randomBytes(24).toString('base64url'),
      botUserId: SANDBOX_BOT_USER_ID,
    })
    sandbox = platform
    opened.push(() => platform.close())
    env = {
      ...env,
      LINE_CHANNEL_SECRET: sandbox.channelSecret,
      LINE_CHANNEL_ACCESS_TOKEN: sandbox.channelAccessToken,
      LINE_API_BASE_URL: sandbox.apiBaseUrl,
      LINE_DATA_API_BASE_URL: sandbox.dataApiBaseUrl,
    }
    sandboxUi = createSandboxUi(sandbox)
  }

  tuneHttpClient()
  await step('opening the database')
  const deps = await createDeps(env, {
    ...opts,
    lineHourlyBudget: sandbox === null,
    sandbox: sandbox !== null,
  })
  opened.push(() => closeDeps(deps))
  // Stopped with the rest: stop() replaces what `opened` closes, and clears it itself.
  let stopping: Promise<void> | null = null
  const reminder = redisDown
    ? remindWhileDegraded(deps, redisDown, () => stopping !== null, opts.degradedReminderMs)
    : undefined
  opened.push(() => clearInterval(reminder))
  const mailer = createMailer(env, deps.db, { sandbox: sandbox !== null })
  opened.push(() => mailer.close())
  // A database recording its channel is checked before migrating: `npm start` from a newer
  // checkout with another channel's credentials (or none) is refused with the schema as it was,
  // not left migrated under the older code still running on it. One without the table yet (the
  // first start after the upgrade to it) migrates first, then checks (and records).
  const channelFirst = await lineChannelTableExists(deps.db).catch((error: unknown) => {
    throw explainDatabaseError(error)
  })
  const halting = Promise.withResolvers<LineChannelMismatch>()
  let watch: ChannelWatch | undefined
  const checkChannel = async (migrationsApplied: number) => {
    await step('checking the LINE channel')
    watch = await checkLineChannelAtStart(
      deps,
      { env, sandbox: sandbox !== null },
      {
        recheckMs: opts.lineChannelRecheckMs,
        onMismatch: (error) => halting.resolve(error),
        migrationsApplied,
      },
    )
    opened.push(() => watch?.stop())
  }
  if (channelFirst) await checkChannel(0)
  // One transaction: a stop waits for its end.
  await step('applying migrations')
  // Said before it starts: a first start of the embedded database spends a minute here.
  deps.log.info('checking and applying database migrations')
  const applied = await migrateToLatest(deps.db)
  if (applied.length > 0) deps.log.info({ applied: applied.length }, 'database migrations applied')
  if (!channelFirst) await checkChannel(applied.length)
  await step('loading the signing secret')
  // Loaded now, while the database answers: checking a link's token (an email click's redirect,
  // a card barcode, a staff session) then needs no database, so an outage that starts before
  // anyone used one cannot break the redirect.
  await getAppSecret(deps.db, 'tokens')
  const inbox = createInbox(deps)

  // A worker still answers health checks and metrics scrapes on PORT, and nothing else.
  const app =
    env.ROLE === 'worker' ? createOpsApp(deps) : createApp(deps, { inbox, mailer, sandboxUi })
  // /sandbox lets anyone act as any LINE user and read their card links: never on the network.
  const hostname = sandbox ? '127.0.0.1' : '0.0.0.0'
  await step('listening')
  const server = await listen(app, env.PORT, hostname)
  keepConnectionsOpen(server)
  const closeServer = closeGracefully(server)
  const { port, address: host } = server.address() as AddressInfo
  const baseUrl = `http://127.0.0.1:${port}`
  // PORT=0 picked a free port: links in messages (card barcodes, account link, unsubscribe)
  // name the server's port when PUBLIC_BASE_URL is unset, so they must name the real one.
  if (deps.env.PORT !== port) deps.env = { ...deps.env, PORT: port }
  if (sandbox) sandbox.setWebhookUrl(`${baseUrl}/webhooks/line`)

  let workers: Workers | null = null
  let workerRedis: ReturnType<typeof createWorkerRedis> | null = null
  let waitsFor = 'nothing: not stopping'
  const halted = Promise.withResolvers<Error>()
  const kizuna: Kizuna = {
    deps,
    port,
    host,
    baseUrl,
    sandbox,
    stop() {
      stopping ??= (async () => {
        // A stopped process does not say it is still degraded, nor hold deps for it.
        clearInterval(reminder)
        watch?.stop()
        // Ends the sandbox page's live streams first: the server would wait for them.
        sandbox?.context.closing.abort()
        waitsFor = 'HTTP requests under way'
        await closeServer()
        waitsFor = 'webhook events being stored and queued'
        await inbox.drain()
        waitsFor = 'jobs under way'
        await workers?.close()
        waitsFor = 'closing Redis and the database'
        mailer.close()
        workerRedis?.disconnect()
        await closeDeps(deps)
        await sandbox?.close()
        waitsFor = 'nothing: stopped'
      })()
      return stopping
    },
    stopWaitsFor() {
      const jobs = waitsFor === 'jobs under way' ? workers?.underWay() : ''
      return jobs ? `${waitsFor} (${jobs})` : waitsFor
    },
    halted: halted.promise,
  }
  // From here on, what start-up opened is what stop() closes.
  opened.splice(0, opened.length, () => kizuna.stop())

  if (env.ROLE !== 'web') {
    await step('starting the workers')
    workerRedis = createWorkerRedis(env.REDIS_URL, deps.redis)
    const processors = createProcessors(deps, {
      mailer,
      deployRichMenus: opts.deployRichMenus !== false,
    })
    workers = startWorkers(deps, processors, workerRedis)
    await scheduleSweeper(deps)
    const catchUp = async () => {
      if (opts.catchUpNightly !== false) await catchUpNightlyRuns(deps)
    }
    await catchUp().catch((err) =>
      deps.log.warn({ err }, 'could not queue the nightly jobs missed'),
    )
    // Deploys richmenus/ (to the sandbox too, which starts empty); unchanged menus cost one call.
    if (opts.deployRichMenus !== false) {
      await deps.queues.enqueue(
        'richmenu.deploy',
        {},
        { jobId: jobIds.richmenuDeploy(`start-${Date.now()}`) },
      )
    }
    // A Redis that restarted empty has lost the schedule, and the jobs it had queued: put the
    // schedule back on every reconnect (only where missing: an upsert would put a nightly job
    // that is due back to the next night), and queue the nightly runs missed.
    deps.redis.on('ready', () => {
      scheduleSweeper(deps, { onlyMissing: true })
        .catch((err) => deps.log.warn({ err }, 'could not schedule the sweeper'))
        .then(catchUp)
        .catch((err) => deps.log.warn({ err }, 'could not queue the nightly jobs missed'))
    })
  }
  // Another channel's credentials, found after start-up (or during it: LINE calls are refused
  // meanwhile, and this waits for its end): the workers stop taking jobs at once (those under
  // way end, their LINE calls refused), then everything stops.
  void halting.promise.then(async (error) => {
    deps.log.error({ botUserId: error.botUserId }, error.message)
    const workersClosed = workers?.close()
    await kizuna.stop()
    await workersClosed
    halted.resolve(error)
  })
  await step('started')
  return kizuna
}

/**
 * Redis before anything opens: a Redis that refuses the connection's set-up (a password, a
 * database number) or a server there that is not Redis stops every role. One that is merely
 * unreachable stops ROLE=worker and ROLE=all, whose work is the queues (and a first `npm start`
 * without Redis must say so), but not ROLE=web, returned to be logged: a web process running
 * through an outage stays ready (degraded) and stores LINE's events, and one restarted during
 * it exited again and again while LINE's events went unanswered.
 */
async function checkRedis(env: Env): Promise<RedisUnreachable | undefined> {
  try {
    await assertRedisReachable(env.REDIS_URL)
  } catch (error) {
    if (env.ROLE === 'web' && error instanceof RedisUnreachable) return error
    throw error
  }
  return undefined
}

/**
 * A ROLE=web process started without Redis says so as an error, and again every
 * `everyMs` (5 min) until Redis answers: what looks like an outage may be a REDIS_URL that is
 * wrong for good (a mistyped host name does not resolve either), and one line at start-up
 * scrolled away while the process ran degraded. Returns the interval (cleared at stop, and
 * silent once `stopping`).
 */
function remindWhileDegraded(
  deps: Deps,
  down: RedisUnreachable,
  stopping: () => boolean,
  everyMs = 5 * 60_000,
): NodeJS.Timeout {
  const said =
    'webhook events are stored and queued by the sweeper once Redis answers; /readyz says ' +
    'degraded until then'
  deps.log.error(`${down.message} Starting all the same (ROLE=web): ${said}`)
  const reminder = setInterval(() => {
    if (stopping() || deps.redis.status === 'ready') clearInterval(reminder)
    else deps.log.error(`${down.message} Running all the same (ROLE=web), still degraded: ${said}`)
  }, everyMs)
  reminder.unref()
  return reminder
}

/**
 * Serves `app` on the port. A port already taken (often 3000, by another dev server) rejects
 * with a message naming PORT: Node's 'error' event, unhandled, crashed the process with a trace.
 */
function listen(
  app: { fetch: Parameters<typeof serve>[0]['fetch'] },
  port: number,
  hostname: string,
): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `PORT ${port} is in use on ${hostname} (another Kizuna or another program): ` +
                'stop it, or set PORT to a free port',
            )
          : error,
      )
    const server = serve({ fetch: app.fetch, port, hostname }, () => {
      server.off('error', failed)
      resolve(server)
    })
    server.once('error', failed)
  })
}

/**
 * Idle keep-alive connections stay open 65 s, not Node's 5 s: the client (a register's HTTP
 * library, a load balancer with the usual 60 s idle timeout) closes them first. When the server
 * closed first, a request sent on a connection just as it closed failed with ECONNRESET, and
 * for a scan the register could not tell whether it was recorded (8 of 6,000 in a pos-scan run).
 */
const KEEP_ALIVE_MS = 65_000

function keepConnectionsOpen(server: ServerType): void {
  if (!('keepAliveTimeout' in server)) return
  server.keepAliveTimeout = KEEP_ALIVE_MS
  // Node wants the headers timeout above the keep-alive one.
  server.headersTimeout = KEEP_ALIVE_MS + 1_000
}

/**
 * server.close() as shutdown needs it. close() ends idle connections, but one whose request is
 * under way stays open after its answer (keep-alive, 65 s), and close() waits for it: a load
 * balancer or register holding a busy connection at SIGTERM kept the process past its 30 s
 * deadline, so it was killed before its workers finished their jobs. From the moment stopping
 * starts, every answer (those under way included) says `Connection: close`, so its connection
 * ends with it.
 */
function closeGracefully(server: ServerType): () => Promise<void> {
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()))
  if (!('keepAliveTimeout' in server)) return close
  const http = server as Server
  const underWay = new Set<ServerResponse>()
  let closing = false
  const endWithAnswer = (res: ServerResponse) => {
    if (!res.headersSent) {
      res.setHeader('connection', 'close')
      return
    }
    // Its headers already went out saying keep-alive: end the connection once it is answered.
    const socket = res.socket
    res.once('finish', () => socket?.end())
  }
  // First, so the header is set before the app could answer.
  http.prependListener('request', (_req, res) => {
    if (closing) return endWithAnswer(res)
    underWay.add(res)
    res.once('close', () => underWay.delete(res))
  })
  return () => {
    closing = true
    const answered = close()
    for (const res of underWay) endWithAnswer(res)
    return answered
  }
}
