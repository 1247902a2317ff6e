import { fetchProfile } from '../identity/identity.jobs.ts'
import { refreshSpend } from '../maintenance/refresh-spend.jobs.ts'
import { sweep } from '../maintenance/sweep.jobs.ts'
import { sendDelivery } from '../messaging/delivery.jobs.ts'
import type { Processors } from '../platform/worker-types.ts'
import { processWebhookEvents } from '../webhook/webhook.jobs.ts'

export const processors: Processors = {
  'webhook.process-events': processWebhookEvents,
  'messaging.send-delivery': sendDelivery,
  'identity.fetch-profile': fetchProfile,
  'maintenance.sweep': sweep,
  'maintenance.refresh-spend': refreshSpend,
}
