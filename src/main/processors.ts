import { memberCardVars } from '../cards/cards.service.ts'
import type { Env } from '../config/env.ts'
import type { Mailer } from '../email/mailer.ts'
import { fetchProfile } from '../identity/identity.jobs.ts'
import { buildLinkInvite, LINK_INVITE_BUILDER } from '../linking/link-start.service.ts'
import { forgetChunkBodies } from '../maintenance/forget-chunk-bodies.jobs.ts'
import { pruneWebhookEvents } from '../maintenance/prune-webhook-events.jobs.ts'
import { purgeLinkRows } from '../maintenance/purge-link-rows.jobs.ts'
import { refreshSpend } from '../maintenance/refresh-spend.jobs.ts'
import { sweep } from '../maintenance/sweep.jobs.ts'
import { createSendDeliveries } from '../messaging/delivery.jobs.ts'
import type { LineLimiters } from '../messaging/line-send.ts'
import type { MessageBuilders, MessageVarsLoaders } from '../messaging/message-vars.ts'
import type { Deps } from '../platform/deps.ts'
import { createLinePacing } from '../platform/line-pacing.ts'
import type { Processors } from '../platform/worker-types.ts'
import { createPurchaseFollowUpVars } from '../purchases/purchase-follow-up.service.ts'
import { createDeployRichMenus } from '../richmenu/richmenu.jobs.ts'
import { createLinkProcessors, unlinkErasedUsers } from '../richmenu/richmenu-link.jobs.ts'
import { enqueueRelink } from '../richmenu/richmenu-link.service.ts'
import { processWebhookEvents } from '../webhook/webhook.jobs.ts'

/** Templates whose variables are completed at send time. */
export function messageVarsLoaders(env: Pick<Env, 'TZ_STORE'>): MessageVarsLoaders {
  const purchaseFollowUpVars = createPurchaseFollowUpVars(env.TZ_STORE)
  return {
    'member-card': memberCardVars,
    'purchase-follow-up': (deps, delivery) => purchaseFollowUpVars(deps.db, delivery),
  }
}

/** Deliveries whose LINE messages are built when they are sent (a delivery's `builder`). */
export function messageBuilders(): MessageBuilders {
  return { [LINK_INVITE_BUILDER]: buildLinkInvite }
}

/**
 * LINE's limits are per channel, so one limiter per endpoint for every worker process, in Redis
 * (LINE-API.md §2.5): push and reply at LINE_PUSH_RATE_PER_SECOND, multicast at 200/s.
 */
export function createLineLimiters(deps: Pick<Deps, 'redis' | 'queues' | 'env'>): LineLimiters {
  const perSecond = deps.env.LINE_PUSH_RATE_PER_SECOND
  const pacing = createLinePacing(deps.redis, deps.queues.prefix, {
    inFlight: deps.env.LINE_CALLS_UNDER_WAY,
    rates: { push: perSecond, reply: perSecond },
    // A send waits for Redis however long: a reply is marked `trying` before its slot, and one
    // given up on would be failed at its next claim as of unknown outcome.
    redisWaitMs: Number.POSITIVE_INFINITY,
  })
  const limiter = (endpoint: keyof LineLimiters) => {
    const found = pacing.limiter(endpoint)
    if (!found) throw new Error(`no per-second limit for LINE ${endpoint}`)
    return found
  }
  return { push: limiter('push'), reply: limiter('reply'), multicast: limiter('multicast') }
}

export function createProcessors(
  deps: Deps,
  tools: {
    mailer: Mailer
    /**
     * This process deploys richmenus/ (StartOptions.deployRichMenus, the default): when false, a
     * link to a menu LINE lost queues no deploy of the shipped menus either.
     */
    deployRichMenus?: boolean
  },
): Processors {
  const { linkUsers, relink, checkLinks } = createLinkProcessors({
    redeployLostMenus: tools.deployRichMenus !== false,
  })
  return {
    'webhook.process-events': processWebhookEvents,
    'messaging.send-deliveries': createSendDeliveries({
      mailer: tools.mailer,
      limiters: createLineLimiters(deps),
      loaders: messageVarsLoaders(deps.env),
      builders: messageBuilders(),
    }),
    'identity.fetch-profile': fetchProfile,
    'richmenu.link-users': linkUsers,
    'richmenu.relink': relink,
    'richmenu.check-links': checkLinks,
    'richmenu.unlink-erased': unlinkErasedUsers,
    'maintenance.sweep': sweep,
    'maintenance.refresh-spend': refreshSpend,
    'maintenance.prune-webhook-events': pruneWebhookEvents,
    'maintenance.purge-link-rows': purgeLinkRows,
    'maintenance.forget-chunk-bodies': forgetChunkBodies,
    // A deploy that changed menus (or left retired ones people still see) re-links everyone whose
    // menu differs; the relink lets the next deploy delete the retired menus.
    'richmenu.deploy': createDeployRichMenus({
      afterChange: (jobDeps) => enqueueRelink(jobDeps, `deploy-${Date.now()}`),
    }),
  }
}
