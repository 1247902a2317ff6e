import type { Command } from 'commander'
import { pino } from 'pino'
import { type Env, isSandbox } from '../config/env.ts'
import { customerIdSchema } from '../customers/customer.schemas.ts'
import { getCustomerProfileByIdentity } from '../customers/customer-profile.service.ts'
import { changeCustomerTags } from '../customers/customer-tag.service.ts'
import { eraseCustomer } from '../customers/erase.service.ts'
import {
  IDENTITY_KINDS,
  type IdentityRef,
  identityQuerySchema,
} from '../customers/identity-values.ts'
import type { LinkedChoice } from '../customers/linked-customers.repo.ts'
import { MAX_TAG_LENGTH, normaliseTag } from '../customers/tag-values.ts'
import { readDatabaseNow } from '../maintenance/maintenance-run.repo.ts'
import { refreshSpendSinceLastRun } from '../maintenance/refresh-spend.service.ts'
import type { Database } from '../platform/db.ts'
import { createLine, type Line } from '../platform/line.ts'
import { createLogger, type Logger } from '../platform/logger.ts'
import { createMetrics } from '../platform/metrics.ts'
import { type ErasedUnlinkOutcome, unlinkErasedMenus } from '../richmenu/erased-unlink.service.ts'
import { checkLineChannelBeforeCalls } from './line-channel-check.ts'
import { relinkChangedCustomers } from './relink.ts'
import { checkSinceOption, readSinceOption } from './since-option.ts'
import { UsageError, withDb } from './with-db.ts'

export function registerCustomerCommands(program: Command): void {
  const customers = program.command('customers').description('customers (members)')
  customers
    .command('find')
    .description(
      "find a customer by an identity, as GET /api/customers does (a merged customer's gives " +
        "the one it was merged into): prints the customer's id on the first line, then name, " +
        'tier, points, tags and the kinds of identities held; exits 1 for an unknown or erased one',
    )
    .argument(
      '<identity>',
      `kind:value, kind one of ${IDENTITY_KINDS.join(', ')} (member_card:2912345678906, "phone:090-1234-5678")`,
    )
    .action((raw: string) =>
      withDb(
        async (db) => {
          // The admin API's lookup: merges followed; unknown and erased throw (exit 1).
          const c = await getCustomerProfileByIdentity(db, readIdentity(raw))
          // To the operator's own terminal, as the admin API answers: the name is shown, the
          // identities only by kind. Nothing is logged.
          const kinds = IDENTITY_KINDS.filter((k) => c.identities.some((i) => i.kind === k))
          console.log(
            [
              c.id,
              `name: ${c.displayName ?? '(none)'}`,
              `tier: ${c.tier}, points: ${c.points}`,
              `tags: ${c.tags.length > 0 ? c.tags.join(', ') : '(none)'}`,
              `identities: ${kinds.length > 0 ? kinds.join(', ') : '(none)'}`,
            ].join('\n'),
          )
        },
        () => readIdentity(raw),
      ),
    )
  customers
    .command('erase')
    .description(
      'erase a customer on request (APPI / GDPR): personal data and identities removed, ' +
        'card numbers kept only as tombstones (scans answer 410), purchases kept anonymised. ' +
        'A customer an account link joined to others that an unlink split again (possibly the ' +
        'same person, possibly a wrong link corrected) is refused, naming them, unless ' +
        '--with-linked or --only says what to do',
    )
    .argument('<id>', 'customer id (uuid)')
    .option(
      '--with-linked',
      'also erase the customers account links joined to it (the same person)',
    )
    .option('--only', 'erase this customer only, leaving those account links joined to it')
    .action((typed: string, opts: { withLinked?: boolean; only?: boolean }) => {
      const id = customerIdOf(typed)
      return withDb(
        async (db, env) => {
          const linked: LinkedChoice = opts.withLinked ? 'erase' : opts.only ? 'only' : 'refuse'
          // Checked first: another channel's credentials refuse the command, erasing nothing.
          const at = await menusAt(db, env)
          const result = await eraseCustomer(db, id, { linked }).catch(async (error) => {
            if ('line' in at) await at.line.close()
            throw error
          })
          // The menus after the commit (unlinkMenus), with the unlinks it recorded.
          const menus = await unlinkMenus(db, at, result.menuUnlinks)
          const note = result.customerId === id ? '' : ` (merged into ${result.customerId})`
          console.log(
            result.alreadyErased
              ? `customer ${id}${note} was already erased; checked again`
              : `erased customer ${id}${note}`,
          )
          for (const linked of result.linked) {
            // Every id erased is named: the operator's record of the request lists them all.
            const why = '(joined to it by an account link before an unlink; --with-linked)'
            console.log(
              linked.alreadyErased
                ? `customer ${linked.customerId} ${why} was already erased; checked again`
                : `erased customer ${linked.customerId} ${why}`,
            )
          }
          printMenus(menus)
        },
        () => {
          checkCustomerId(id)
          if (opts.withLinked && opts.only) {
            throw new UsageError('--with-linked and --only: choose one')
          }
        },
      )
    })
  const tagRule = `1 to ${MAX_TAG_LENGTH} characters each, no comma or semicolon`
  for (const [name, description, change, rule] of [
    [
      'tag',
      'add tags to a customer (kept once each; a merged id tags its survivor)',
      'add',
      `${tagRule}, not . or ..`,
    ],
    [
      'untag',
      'remove tags from a customer (one it does not carry is fine)',
      'remove',
      `${tagRule} (. and .. too, stored before they were refused)`,
    ],
  ] as const) {
    customers
      .command(name)
      .description(description)
      .argument('<id>', 'customer id (uuid)')
      .argument('<tag...>', rule)
      .action((typed: string, tags: string[]) => {
        const id = customerIdOf(typed)
        return withDb(
          async (db) => {
            const result = await changeCustomerTags(db, id, { [change]: tags })
            const note = result.customerId === id ? '' : ` (merged into ${result.customerId})`
            const list = result.tags.length > 0 ? `tags ${result.tags.join(', ')}` : 'no tags'
            console.log(`customer ${id}${note}: ${list}`)
          },
          () => {
            checkCustomerId(id)
            for (const tag of tags) {
              const checked = normaliseTag(tag, change)
              if (!checked.ok)
                throw new UsageError(`<tag>: ${JSON.stringify(tag)} ${checked.message}`)
            }
          },
        )
      })
  }
  customers
    .command('refresh-spend')
    .description(
      'recompute 12-month spend and tier for customers whose purchases aged out (and every tier, when the thresholds changed); ' +
        'when a customer changed, queue a rich menu relink for the workers',
    )
    .option(
      '--since <date>',
      'also cover purchases that aged out from this time on, when it is before the last successful run ' +
        '(a date, from 00:00 in TZ_STORE, or an ISO 8601 date-time with offset); default: the last successful run (none: all time)',
    )
    .action(async (opts: { since?: string }) => {
      // A relink is queued once the database is closed: reaching Redis holds no connection.
      let relinkWith: Env | undefined
      await withDb(
        async (db, env) => {
          // The window is the database's clock's (refreshSpendSinceLastRun): so is the future.
          const since = opts.since
            ? readSinceOption(opts.since, env.TZ_STORE, await readDatabaseNow(db))
            : undefined
          const result = await refreshSpendSinceLastRun(db, env, { since })
          if (since && result.since && since > result.since) {
            laterThanLastRun(opts.since ?? '', result.since)
          }
          for (const u of result.unattached.slice(0, SHOWN_UNATTACHED)) {
            console.error(
              `note: purchases waiting for customer ${u.customerId} (${u.kind}) were not attached: ${u.message}; the next run tries again`,
            )
          }
          const more = result.unattached.length - SHOWN_UNATTACHED
          if (more > 0) console.error(`note: and those of ${more} more identities`)
          const retiered =
            result.retiered === null ? '' : `; thresholds changed: ${result.retiered} tiers re-set`
          const attached =
            result.attached === 0
              ? ''
              : `; ${result.attached} waiting purchases attached to customers holding their id`
          const window = result.since
            ? `since ${result.since.toISOString()}`
            : 'since the first purchase (the first run)'
          console.log(`${result.changed} customers updated ${window}${retiered}${attached}`)
          // A tier moved, or purchases were attached: the menus follow (as the nightly's relink).
          if (result.changed + (result.retiered ?? 0) + result.attached > 0) relinkWith = env
        },
        () => {
          if (opts.since) checkSinceOption(opts.since)
        },
      )
      if (relinkWith) await relinkChangedCustomers(relinkWith, 'refresh-spend')
    })
}

/** Identities whose waiting purchases failed to attach that a run names on stderr. */
const SHOWN_UNATTACHED = 20

/** `--since` after the last successful run, which the window then starts at: why. */
function laterThanLastRun(text: string, lastRun: Date): void {
  console.error(
    `note: --since ${text} is after the last successful run, so the window starts at that run ` +
      `(${lastRun.toISOString()}): a run is recorded as covering all since its start, and a ` +
      'later start would leave the purchases that aged out in between unseen',
  )
}

/** `<identity>` as GET /api/customers takes `?identity=` (identityQuerySchema). */
function readIdentity(raw: string): IdentityRef {
  const parsed = identityQuerySchema.safeParse(raw)
  if (parsed.success) return parsed.data
  throw new UsageError(`<identity>: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
}

/**
 * `<id>` as ids are stored and answered: in lower case. z.uuid and Postgres take upper case too,
 * and the answer's id, compared with the typed one, then read as a merge ("merged into").
 */
function customerIdOf(typed: string): string {
  return typed.toLowerCase()
}

/** Refuses an `<id>` that is no uuid, without quoting it (an email pasted there, say). */
function checkCustomerId(id: string): void {
  if (!customerIdSchema.safeParse(id).success) throw new UsageError('<id>: not a uuid')
}

/**
 * What became of the per-user menus of an erased person: `failed` ones stay shown at LINE until
 * the sweeper's retry gets through, `pending` ones until another attempt's does, `skipped` ones
 * until the sweeper's (no LINE call here: see MenusAt).
 */
type ErasedMenus = ErasedUnlinkOutcome & { skipped: number; skippedFor?: SkippedFor }

type SkippedFor = 'sandbox' | { unchecked: string }

/**
 * Where the erased people's menus are unlinked: at LINE, once the credentials' channel is the
 * one the database serves (another one's throws: the command erases nothing). Nowhere in sandbox
 * mode (no LINE to reach: the sandbox's own worker does it), nor when LINE did not say which
 * channel it is: the erasure goes ahead all the same (a LINE outage must not hold a request to
 * erase) and the worker's sweeper unlinks them once its LINE answers.
 */
type MenusAt = { line: Line; log: Logger } | { skippedFor: SkippedFor }

async function menusAt(db: Database, env: Env): Promise<MenusAt> {
  if (isSandbox(env)) return { skippedFor: 'sandbox' }
  const line = createLine(env, createMetrics())
  // Logs go to stderr: stdout is the result.
  const log = createLogger(env.LOG_LEVEL, pino.destination(2))
  try {
    const unchecked = await checkLineChannelBeforeCalls(
      db,
      env,
      line,
      log,
      'Nothing erased: no call went to LINE but that check.',
    )
    if (unchecked === null) return { line, log }
    await line.close()
    return { skippedFor: { unchecked } }
  } catch (error) {
    await line.close()
    throw error
  }
}

/**
 * After eraseCustomer committed: unlinks at LINE the menu of each LINE user it erased (its
 * `menuUnlinks`, the rows holding their LINE user ids until LINE confirms), linked or not as far
 * as Kizuna knew (unlinkErasedMenus). Never throws for LINE: the erasure is done, and what LINE
 * did not confirm waits for the sweeper. Without LINE here (MenusAt), nothing is sent: the users
 * count as skipped, their rows left to the sweeper.
 */
async function unlinkMenus(db: Database, at: MenusAt, menuUnlinks: string[]): Promise<ErasedMenus> {
  if (!('line' in at)) {
    const none = { unlinked: 0, refused: 0, failed: 0, pending: 0 }
    return { ...none, skipped: menuUnlinks.length, skippedFor: at.skippedFor }
  }
  try {
    const { line, log } = at
    return { ...(await unlinkErasedMenus({ db, line, log }, menuUnlinks)), skipped: 0 }
  } finally {
    await at.line.close()
  }
}

/** What became of the menus, by count only: no LINE user id is printed. */
function printMenus(m: ErasedMenus): void {
  if (m.unlinked > 0) console.log(`rich menu unlinked at LINE for ${m.unlinked} LINE user(s)`)
  if (m.refused > 0) {
    console.error(
      `note: LINE refused ${m.refused} LINE user id(s) as invalid (400): it links no menu to ` +
        'them, so there was none to unlink',
    )
  }
  if (m.failed > 0) {
    console.error(
      `warning: the rich menu could not be unlinked at LINE for ${m.failed} LINE user(s) ` +
        `(${m.failure}); the erasure went ahead. The worker's sweeper (npm start) tries again ` +
        'until LINE confirms, for up to 30 days; LINE shows that menu until then.',
    )
  }
  if (m.pending > 0) {
    console.error(
      `note: the rich menu of ${m.pending} LINE user(s) is being unlinked at LINE by another ` +
        'attempt (a link that landed after the erasure, or the sweeper): not sent again here. ' +
        "The worker's sweeper (npm start) tries again until LINE confirms, for up to 30 days.",
    )
  }
  if (m.skipped === 0 || m.skippedFor === undefined) return
  if (m.skippedFor === 'sandbox') {
    console.error(
      `note: sandbox mode (no LINE credentials): the rich menu of ${m.skipped} LINE user(s) was ` +
        'not unlinked here; the LINE sandbox lives in the `npm start` process, whose sweeper ' +
        'unlinks it.',
    )
    return
  }
  console.error(
    `warning: the rich menu of ${m.skipped} LINE user(s) was not unlinked at LINE: which LINE ` +
      `channel these credentials are could not be checked (${m.skippedFor.unchecked}); the ` +
      "erasure went ahead. The worker's sweeper (npm start) unlinks it once its LINE answers, " +
      'for up to 30 days; LINE shows that menu until then.',
  )
}
