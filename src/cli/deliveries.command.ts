import type { Command } from 'commander'
import { SWEEP_GRACE_MS } from '../maintenance/sweep.jobs.ts'
import {
  countParkedByKind,
  deliveryKindExists,
  RETRYABLE_STATUSES,
  type RetryableStatus,
  requeueDeliveries,
} from '../messaging/delivery-requeue.repo.ts'
import { RETRY_KEY_SAFE_HOURS } from '../messaging/retry-key.ts'
import type { Database } from '../platform/db.ts'
import { UsageError, withDb } from './with-db.ts'

export function registerDeliveryCommands(program: Command): void {
  const deliveries = program.command('deliveries').description('messages to customers')
  deliveries
    .command('retry')
    .description(
      'send parked deliveries again: quota_exceeded (after the LINE monthly quota renews or the ' +
        'plan is raised) or failed (after fixing their template), not those whose request may ' +
        `have reached LINE over ${RETRY_KEY_SAFE_HOURS} hours ago; the sweeper queues them`,
    )
    .option('--status <status>', `${RETRYABLE_STATUSES.join(' | ')}`, 'quota_exceeded')
    .option('--kind <kind>', 'only deliveries of this kind (e.g. campaign, post-purchase)')
    .action((opts: { status: string; kind?: string }) =>
      withDb(
        async (db, env) => {
          const status = opts.status as RetryableStatus
          const { requeued, keyExpired } = await requeueDeliveries(db, { status, kind: opts.kind })
          if (opts.kind !== undefined && requeued + keyExpired === 0) {
            await refuseUnknownKind(db, opts.kind, status)
          }
          const within = Math.ceil((env.SWEEP_INTERVAL_MS + SWEEP_GRACE_MS) / 1000)
          console.log(
            `${requeued} ${opts.status} deliveries back to pending; a running worker sends them ` +
              `within about ${within} s`,
          )
          if (keyExpired > 0) {
            const what =
              keyExpired === 1
                ? 'delivery left as it is: its'
                : 'deliveries left as they are: their'
            console.log(
              `${keyExpired} ${opts.status} ${what} request may have reached LINE more than ` +
                `${RETRY_KEY_SAFE_HOURS} hours ago, and sending again could deliver twice ` +
                '(LINE takes a retry key as new after 24 hours)',
            )
          }
        },
        () => checkRetryArgs(opts),
      ),
    )
}

/** Before any database opens: an unknown status, or a blank kind. */
function checkRetryArgs(opts: { status: string; kind?: string }): void {
  if (!(RETRYABLE_STATUSES as readonly string[]).includes(opts.status)) {
    throw new UsageError(
      `--status: must be one of ${RETRYABLE_STATUSES.join(', ')} (got ${opts.status})`,
    )
  }
  if (opts.kind !== undefined && opts.kind.trim() === '') {
    throw new UsageError('--kind: give a kind, e.g. post-purchase')
  }
}

/**
 * A kind no delivery has is a typo (kinds are open: a campaign names its own), which would
 * otherwise put nothing back and say so as if all was well.
 */
async function refuseUnknownKind(db: Database, kind: string, status: RetryableStatus) {
  if (await deliveryKindExists(db, kind)) return
  const parked = await countParkedByKind(db, status, PARKED_KINDS_SHOWN)
  const kinds = parked.map((p) => `${p.kind} (${p.count})`).join(', ') || 'none'
  throw new UsageError(
    `--kind: no delivery is of kind "${kind}"; kinds with ${status} deliveries: ${kinds}`,
  )
}

const PARKED_KINDS_SHOWN = 10
