import type { messagingApi } from '@line/bot-sdk'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'

/**
 * Completes a template delivery's variables at send time from the delivery's stored vars (ids,
 * not personal data) and the customer: a receipt's lines, a member card's points. Returns null
 * when there is nothing to send any more (the receipt was voided): the delivery is skipped. Throws
 * an AppError GONE when the customer was erased: the delivery is skipped as erased.
 */
export type MessageVarsLoader = (
  db: Db,
  delivery: { customerId: string; vars: Record<string, unknown> },
) => Promise<Record<string, unknown> | null>

/** The same, for loaders that need more than the database (a signed URL, the clock). */
export type MessageVarsLoaderWithDeps = (
  deps: Deps,
  delivery: { customerId: string; vars: Record<string, unknown> },
) => Promise<Record<string, unknown> | null>

/** Template id → its loader; templates without one are rendered with their stored vars. */
export type MessageVarsLoaders = Record<string, MessageVarsLoaderWithDeps>

/**
 * Builds a delivery's LINE messages when it is sent, from its stored vars (ids, not personal
 * data): for messages that need a LINE call first (an account-link invite's link token). Throws
 * an AppError GONE when the customer was erased (the delivery is skipped as erased); any other
 * throw leaves the delivery pending for another try.
 */
export type MessageBuilder = (
  deps: Deps,
  delivery: { id: string; customerId: string; vars: Record<string, unknown> },
) => Promise<messagingApi.Message[]>

/** Builder name → its builder (a delivery's `builder`). */
export type MessageBuilders = Record<string, MessageBuilder>
