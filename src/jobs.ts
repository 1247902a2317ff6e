import { z } from 'zod'

/** Every job: its queue and payload schema. Payloads carry ids only, never personal data. */
export const JOBS = {
  'webhook.process-event': {
    queue: 'webhook',
    schema: z.object({ webhookEventId: z.string().min(1) }).strict(),
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
} as const

export type JobName = keyof typeof JOBS
export type JobData<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>
export type QueueName = (typeof JOBS)[JobName]['queue']
export const QUEUE_NAMES = [...new Set(Object.values(JOBS).map((j) => j.queue))] as QueueName[]

/** Job ids come from business keys: `<kind>-<id>`, never `:`, never all digits. */
export const jobIds = {
  webhookEvent: (webhookEventId: string) => `webhook-event-${webhookEventId}`,
  delivery: (deliveryId: string) => `delivery-${deliveryId}`,
  profile: (lineUserId: string, cause: string) => `profile-${lineUserId}-${cause}`,
}
