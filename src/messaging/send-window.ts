import { SENDING_LEASE_SECONDS } from './delivery-claim.repo.ts'

/**
 * How a send job keeps within the lease on the rows it claims (SENDING_LEASE_SECONDS): a row
 * still in `sending` after it is taken as abandoned, and another job may send it, so nothing the
 * job started may still be going out by then. The job starts emails during the first half of the
 * lease only, timed from before its claim; those not started by then go back to `pending`, never
 * sent, and are queued again. One email takes a quarter of the lease at most (the wait for a
 * connection, the SMTP conversation, the server's answer), so the last one is over with a quarter
 * left for recording the outcomes. LINE calls are not held to the window (the wait for a limiter
 * slot can outlast it): a row another job takes over after the lease repeats the request stored
 * for it (its push or its chunk) under the same retry key, which LINE does not deliver twice, and
 * a reply marked under way is failed rather than pushed. The job that outlived the lease stores
 * nothing on such a row and makes no call for it (line-claim.repo.ts).
 */
export type SendWindow = {
  /** Whether an email may still start. */
  isOpen(): boolean
  /** The longest one email may take (ms). */
  emailMs: number
}

export function openSendWindow(leaseSeconds = SENDING_LEASE_SECONDS): SendWindow {
  const leaseMs = leaseSeconds * 1000
  const closesAt = performance.now() + leaseMs / 2
  return { isOpen: () => performance.now() < closesAt, emailMs: leaseMs / 4 }
}
