import { createHash } from 'node:crypto'
import { z } from 'zod'

/** Webhook events travel in groups: one Redis job per inbox write, not one per event. */
export const MAX_EVENTS_PER_JOB = 500

/** Every job: its queue and payload schema. Payloads carry ids only, never personal data. */
export const JOBS = {
  'webhook.process-events': {
    queue: 'webhook',
    schema: z
      .object({ webhookEventIds: z.array(z.string().min(1)).min(1).max(MAX_EVENTS_PER_JOB) })
      .strict(),
  },
  'messaging.send-delivery': {
    queue: 'delivery',
    schema: z.object({ deliveryId: z.uuid() }).strict(),
  },
  'identity.fetch-profile': {
    queue: 'identity',
    schema: z.object({ lineUserId: z.uuid() }).strict(),
  },
  'maintenance.sweep': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
  'maintenance.refresh-spend': {
    queue: 'maintenance',
    schema: z.object({}).strict(),
  },
} as const

export type JobName = keyof typeof JOBS
export type JobData<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>
export type QueueName = (typeof JOBS)[JobName]['queue']
export const QUEUE_NAMES = [...new Set(Object.values(JOBS).map((j) => j.queue))] as QueueName[]

/** Job ids come from business keys: `<kind>-<id>`, never `:`, never all digits. */
export const jobIds = {
  /** The same group of events always gets the same id (BullMQ drops the repeat). */
  webhookEvents: (webhookEventIds: string[]) =>
    webhookEventIds.length === 1
      ? `webhook-event-${webhookEventIds[0]}`
      : `webhook-events-${createHash('sha256').update(webhookEventIds.join(',')).digest('hex').slice(0, 32)}`,
  delivery: (deliveryId: string) => `delivery-${deliveryId}`,
  profile: (lineUserId: string, cause: string) => `profile-${lineUserId}-${cause}`,
}
