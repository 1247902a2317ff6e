import { createHash } from 'node:crypto'
import { z } from 'zod'

/** Webhook events travel in groups: one Redis job per inbox write, not one per event. */
export const MAX_EVENTS_PER_JOB = 500
/** Deliveries travel in groups too (a campaign); most jobs carry one. */
export const MAX_DELIVERIES_PER_JOB = 500
/** LINE users per rich menu link job: LINE's bulk link takes 500. */
export const MAX_RICHMENU_USERS_PER_JOB = 500

/** Every job: its queue and payload schema. Payloads carry ids only, never personal data. */
export const JOBS = {
  'webhook.process-events': {
    queue: 'webhook',
    schema: z
      .object({ webhookEventIds: z.array(z.string().min(1)).min(1).max(MAX_EVENTS_PER_JOB) })
      .strict(),
  },
  'messaging.send-deliveries': {
    queue: 'delivery',
    schema: z
      .object({ deliveryIds: z.array(z.uuid()).min(1).max(MAX_DELIVERIES_PER_JOB) })
      .strict(),
  },
  'identity.fetch-profile': {
    queue: 'identity',
    schema: z.object({ lineUserId: z.uuid() }).strict(),
  },
  'richmenu.link-users': {
    queue: 'richmenu',
    schema: z
      .object({ lineUserIds: z.array(z.uuid()).min(1).max(MAX_RICHMENU_USERS_PER_JOB) })
      .strict(),
  },
  'richmenu.relink': {
    queue: 'richmenu',
    schema: z.object({}).strict(),
  },
  'richmenu.check-links': {
    queue: 'richmenu',
    schema: z
      .object({
        versionId: z.uuid(),
        lineUserIds: z.array(z.uuid()).min(1).max(MAX_RICHMENU_USERS_PER_JOB),
      })
      .strict(),
  },
  'richmenu.unlink-erased': {
    queue: 'richmenu',
    schema: z
      .object({ unlinkIds: z.array(z.uuid()).min(1).max(MAX_RICHMENU_USERS_PER_JOB) })
      .strict(),
  },
  'maintenance.sweep': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'maintenance.refresh-spend': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'maintenance.prune-webhook-events': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'maintenance.purge-link-rows': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'maintenance.forget-chunk-bodies': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'richmenu.deploy': {
    queue: 'richmenu',
    schema: z.object({}).strict(),
  },
} as const

export type JobName = keyof typeof JOBS
export type JobData<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>
export type QueueName = (typeof JOBS)[JobName]['queue']
export const QUEUE_NAMES = [...new Set(Object.values(JOBS).map((j) => j.queue))] as QueueName[]

/** LINE's webhookEventId, as LINE sends it: a ULID (26 letters and digits). */
const ULID_SHAPE = /^[0-9A-Za-z]{26}$/

/**
 * An id from outside (a webhookEventId: LINE signs the request, not the shape of its ids) as a
 * job id may hold it. A ULID stays as it is (readable in Redis and the logs); anything else (a `:`
 * BullMQ refuses, which fails every job sent with it; a `,` or `-`, which could pass for two ids
 * or an id and a cause) becomes `_` and a hash of it, the same each time, so that a job queued
 * again still gets its first id. A ULID never holds `_`: no id kept as it is reads as a hashed one.
 */
export function externalJobKey(id: string): string {
  return ULID_SHAPE.test(id) ? id : `_${createHash('sha256').update(id).digest('hex').slice(0, 32)}`
}

/** Job ids come from business keys: `<kind>-<id>`, never `:`, never all digits. */
export const jobIds = {
  /**
   * The same group of events always gets the same id (BullMQ drops the repeat). A cause (the
   * sweeper) gives a new id: BullMQ keeps a failed job a week and would drop the sweeper's too.
   */
  webhookEvents: (webhookEventIds: string[], cause?: string) =>
    groupJobId('webhook-event', webhookEventIds.map(externalJobKey)) + (cause ? `-${cause}` : ''),
  /** The same group of deliveries always gets the same id. */
  deliveries: (deliveryIds: string[]) => groupJobId('delivery', deliveryIds),
  /**
   * Deliveries due later (post-purchase delay, quiet hours, a rate-limit wait), by due time, and
   * by the claim that deferred them (`attempts`, the most among them): a job that fired a moment
   * early and is deferred to the same time again must not get its own running job's id.
   */
  deliveriesAt: (deliveryIds: string[], dueMs: number, attempts?: number) =>
    `${groupJobId('delivery', deliveryIds)}-at-${dueMs}${attempts ? `-try-${attempts}` : ''}`,
  profile: (lineUserId: string, cause: string) => `profile-${lineUserId}-${cause}`,
  /** One deploy per cause (a start): BullMQ keeps a finished job's id for a day. */
  richmenuDeploy: (cause: string) => `richmenu-deploy-${cause}`,
  /** The menus of these LINE users, once per cause (a webhook event, a purchase). */
  richMenuLink: (lineUserIds: string[], cause: string) =>
    `${groupJobId('richmenu-link', lineUserIds)}-${cause}`,
  /** A nightly job missed (maintenance_run), queued at once: once a store day. */
  nightlyCatchUp: (schedulerId: string, storeDate: string) =>
    `${schedulerId}-catch-up-${storeDate}`,
  /** Every mismatched friend, once per cause (a deploy, a refresh run, an import minute). */
  richMenuRelink: (cause: string) => `richmenu-relink-${cause}`,
  /**
   * Erased people's menus still to unlink (erased_menu_unlink rows), by the rows' state (a claim
   * or a debt owed again changes it): the same owed work gets the same id, once per cause.
   */
  erasedUnlink: (rows: { id: string; generation: number; tries: number }[], cause: string) =>
    `${groupJobId(
      'richmenu-unlink',
      rows.map((r) => `${r.id}-${r.generation}-${r.tries}`),
    )}-${cause}`,
  /** The check of one bulk link LINE accepted (its users, the menu version, when it was sent). */
  richMenuCheck: (lineUserIds: string[], versionId: string, sentAt: number) =>
    `${groupJobId('richmenu-check', lineUserIds)}-${versionId}-${sentAt}`,
}

/** `<kind>-<id>` for one, `<kind>s-<hash of the ids>` for a group. */
function groupJobId(kind: string, ids: string[]): string {
  return ids.length === 1
    ? `${kind}-${ids[0]}`
    : `${kind}s-${createHash('sha256').update(ids.join(',')).digest('hex').slice(0, 32)}`
}
