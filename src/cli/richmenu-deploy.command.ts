import { resolve } from 'node:path'
import type { Command } from 'commander'
import { pino } from 'pino'
import { type Env, isSandbox, loadEnv } from '../config/env.ts'
import { systemClock } from '../platform/clock.ts'
import type { Database } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { createHourlyBudget } from '../platform/hourly-budget.ts'
import { createLine, type Line } from '../platform/line.ts'
import { createLinePacing } from '../platform/line-pacing.ts'
import { createLogger, type Logger } from '../platform/logger.ts'
import { createMetrics } from '../platform/metrics.ts'
import type { Redis } from '../platform/redis.ts'
import { deployRichMenus, type RichMenuDeploySummary } from '../richmenu/richmenu-deploy.service.ts'
import { type RichMenuProblem, richMenusDir } from '../richmenu/richmenu-files.ts'
import { checkLineChannelBeforeCalls } from './line-channel-check.ts'
import { connectRedis, queueRelinkFromCli } from './relink.ts'
import { UsageError, withDb } from './with-db.ts'

const SANDBOX_MESSAGE =
  'no LINE credentials (LINE_CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN): nothing to deploy to. ' +
  '`npm start` deploys richmenus/ to its LINE sandbox itself at every start.'

/** `kizuna richmenu deploy`: attached to the `richmenu` command, made here when absent. */
export function registerRichMenuDeployCommand(program: Command): void {
  const richmenu =
    program.commands.find((c) => c.name() === 'richmenu') ??
    program.command('richmenu').description('rich menus in richmenus/')
  richmenu
    .command('deploy')
    .description(
      "make LINE rich menus match richmenus/: first LINE's list (one call) says which recorded " +
        'menus the channel lacks (another channel, deleted by hand); those and changed ones are ' +
        'created anew (alias moved, default set) and the old one retired, then deleted once ' +
        'nobody is linked to it; unchanged menus make no other call (except to put back a default ' +
        'or alias a stopped deploy left unsettled); one line per menu, exit 1 ' +
        'on any problem or when the folder has no menus (see --remove-all)',
    )
    .option('--dir <dir>', 'the rich menus folder', richMenusDir)
    // Kizuna's records name menus, not the channel they are at: after sandbox runs, or with
    // menus deleted in LINE's console, a deploy that trusted them said `unchanged` and sent
    // nothing. So LINE is asked first unless told not to.
    .option('--check-line', "compare with LINE's list first (the default)")
    .option('--no-check-line', "trust Kizuna's records of what LINE has: no list call")
    .option(
      '--remove-all',
      'for a folder with no menus: retire every menu, delete its aliases and the default at LINE ' +
        'and unlink every friend (without it, a folder with no menus is refused)',
    )
    .action((opts: { dir: string; checkLine?: boolean; removeAll?: boolean }) =>
      withDb(
        async (db, env) => {
          // Logs go to stderr: stdout is the one-line-per-menu report.
          const log = createLogger(env.LOG_LEVEL, pino.destination(2))
          // LINE's hourly budget for creating and deleting menus is the workers' one, in Redis.
          const redis = await connectRedis(env)
          // So are the per-second limits (the list: 10/s).
          const line = createLine(env, createMetrics(), {
            hourly: createHourlyBudget(redis, env.QUEUE_PREFIX),
            pacing: createLinePacing(redis, env.QUEUE_PREFIX, {
              inFlight: env.LINE_CALLS_UNDER_WAY,
            }),
          })
          try {
            const summary = await deployRichMenus(
              { db, line, log, clock: systemClock },
              {
                dir: resolve(opts.dir),
                checkLine: opts.checkLine !== false,
                removeAll: opts.removeAll === true,
                afterChange: () => queueRelink(redis, env),
                // Another channel's credentials would forget the menus of the one the
                // database serves (LINE lacks them) and record theirs instead.
                beforeLine: () => checkChannel(db, env, line, log),
              },
            )
            printSummary(summary)
          } catch (error) {
            if (error instanceof AppError && error.code === 'UNPROCESSABLE') {
              for (const p of error.details as RichMenuProblem[]) {
                console.error(`${p.file}: ${p.field}: ${p.message}`)
              }
            }
            throw error
          } finally {
            await line.close()
            redis.disconnect()
          }
        },
        () => {
          if (isSandbox(loadEnv())) throw new UsageError(SANDBOX_MESSAGE)
        },
      ),
    )
}

/** Refuses another LINE channel than the database's, and a channel LINE did not name. */
async function checkChannel(db: Database, env: Env, line: Line, log: Logger): Promise<void> {
  const unchecked = await checkLineChannelBeforeCalls(
    db,
    env,
    line,
    log,
    'Nothing deployed: no call went to LINE but that check.',
  )
  if (unchecked) {
    throw new Error(
      `could not check which LINE channel these credentials are (${unchecked}): nothing ` +
        'deployed (no other call went to LINE); run it again once LINE answers',
    )
  }
}

/**
 * People whose menu changed are re-linked by the workers: the relink job goes through Redis.
 * The deploy recorded the relink as owed (richmenu_relink) until one runs to the end, so when
 * it cannot be queued the next deploy (Kizuna's next start, or this command again) queues it;
 * the nightly relink does it too.
 */
async function queueRelink(redis: Redis, env: Env): Promise<void> {
  const result = await queueRelinkFromCli(env, 'deploy', redis)
  if (result.queued) {
    console.error('re-linking queued: the workers link people to their new menus')
    return
  }
  console.error(
    `could not queue the re-linking (${result.why}): it stays owed, so Kizuna's next start ` +
      '(or `kizuna richmenu deploy` run again) queues it; the nightly relink does it too',
  )
}

function printSummary(s: RichMenuDeploySummary): void {
  const rows: [string, string[]][] = [
    ['created', s.created],
    ['unchanged', s.unchanged],
    ['retired', s.retired],
    ['deleted', s.deleted],
    ['waiting', s.waiting],
  ]
  for (const [outcome, names] of rows) {
    for (const name of names) console.log(`${outcome.padEnd(10)}${name}`)
  }
  if (s.waiting.length > 0) {
    console.error(
      `${s.waiting.length} retired menu(s) still linked to people: deleted by a later deploy, ` +
        'once they are re-linked',
    )
  }
}
