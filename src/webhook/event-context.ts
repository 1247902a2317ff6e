import type { Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'

/** What a module's event handler gets: one transaction, and work to run after it commits. */
export type EventContext = {
  deps: Deps
  trx: Transaction<DB>
  webhookEventId: string
  receivedAt: Date
  /** When it happened (LINE's event time): a reply token is no use 20 minutes after it. */
  occurredAt: Date
  /** True unless the mode is `active` (standby: another channel holds the chat): never send anything. */
  standby: boolean
  afterCommit: (fn: () => Promise<void>) => void
}

/** What became of an event; stored on the webhook_event row and counted in metrics. */
export type EventOutcome =
  | 'handled'
  | 'standby'
  | 'stale'
  | 'stored'
  | 'ignored'
  | 'unrouted'
  /** The person was erased before the event was processed: nothing of it is left to act on. */
  | 'erased'
  /** Not applied: malformed (a source.userId that is no LINE user id); the row is failed. */
  | 'invalid'
