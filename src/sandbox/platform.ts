import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { webhook } from '@line/bot-sdk'
import type { Hono } from 'hono'
import { createLineApiApp } from './api.routes.ts'
import { createLineDataApp } from './data.routes.ts'
import type { RateLimit } from './rate-limit.ts'
import { matchesPath, type SandboxEnv } from './request-pipeline.ts'
import {
  createSandboxContext,
  type FailNextOptions,
  type InboxEntry,
  type RecordedRequest,
  type SandboxContext,
  type SandboxOptions,
  type WebhookDelivery,
} from './state.ts'
import { createSimUsers, type SimUsers } from './users.ts'
import {
  type BuildEventOptions,
  buildEvent,
  type EventInputs,
  type EventKind,
  envelope,
} from './webhook-events.ts'
import { type DeliverWebhookOptions, deliverWebhook, type WebhookResult } from './webhook-sender.ts'

/** The platform without sockets: drive `apiApp`/`dataApp` with `app.request()`. */
export type SandboxPlatform = {
  botUserId: string
  channelSecret: string
  channelAccessToken: string
  apiApp: Hono<SandboxEnv>
  dataApp: Hono<SandboxEnv>
  users: SimUsers
  /** Every API and data-host request, oldest first. */
  requests: RecordedRequest[]
  requestsTo(method: string, path: string | RegExp): RecordedRequest[]
  clearRequests(): void
  /** The next `count` (default 1) matching requests get this answer, before any validation. */
  failNext(opts: FailNextOptions): void
  clearFailures(): void
  /**
   * The next matching request waits until `release()` (or the platform's close), then is
   * carried out and answered as usual; `arrived` resolves once it has come in.
   */
  holdNext(opts: { method?: string; path: string | RegExp }): {
    arrived: Promise<void>
    release: () => void
  }
  /** Messages the user received (reply, push, multicast, ...), oldest first. */
  inbox(userId: string): InboxEntry[]
  /** The rich menu the user sees: their linked one, else the default. */
  richMenuOf(userId: string): string | undefined
  /**
   * The next bulk link naming this user is accepted (202) but leaves them as they were: LINE
   * carries a bulk link out later and does not promise it (LINE-API.md §4).
   */
  missInNextBulkLink(userId: string): void
  /**
   * From now on this well-formed user id is not in the channel (another provider's, or one LINE
   * no longer knows): a push to it answers 400 'Failed to send messages', and a multicast naming
   * it answers 200 and sends it nothing (LINE-API.md §2.3), as for any unknown well-formed id.
   */
  markNotInChannel(userId: string): void
  /**
   * From now on a multicast naming this user id is refused as a whole, 400 `to[N]`, sending to
   * nobody. LINE's multicast reference says both: its delivery conditions (and LINE-API.md
   * §2.3) give 200 for an id not in the channel, its error table a 400; the stand-in follows the
   * first unless a test asks for the second with this. (A malformed or non-user id is always
   * refused so.)
   */
  refuseInMulticast(userId: string): void
  webhookDeliveries: WebhookDelivery[]
  readonly webhookUrl: string | undefined
  setWebhookUrl(url: string | undefined): void
  setRateLimit(key: string, limit: RateLimit | null): void
  setQuota(limit: number | undefined): void
  buildEvent<K extends EventKind>(
    kind: K,
    userId: string,
    input: EventInputs[K],
    opts?: BuildEventOptions,
  ): webhook.Event
  envelope(events: webhook.Event[]): webhook.CallbackRequest
  deliverWebhook(
    body: webhook.CallbackRequest | webhook.Event[],
    opts?: DeliverWebhookOptions,
  ): Promise<WebhookResult>
  /** Shared state, for assertions the helpers don't cover. */
  context: SandboxContext
}

export type LinePlatform = SandboxPlatform & {
  apiBaseUrl: string
  dataApiBaseUrl: string
  close(): Promise<void>
}

export type LinePlatformOptions = SandboxOptions & {
  host?: string
  /** 0 (default) picks a free port. */
  apiPort?: number
  dataPort?: number
}

export function createLinePlatform(opts: SandboxOptions): SandboxPlatform {
  const ctx = createSandboxContext(opts)
  const { state } = ctx
  return {
    botUserId: ctx.botUserId,
    channelSecret: ctx.channelSecret,
    channelAccessToken: ctx.channelAccessToken,
    apiApp: createLineApiApp(ctx),
    dataApp: createLineDataApp(ctx),
    users: createSimUsers(ctx),
    requests: state.requests,
    requestsTo: (method, path) =>
      state.requests.filter(
        (r) => r.method === method.toUpperCase() && matchesPath(path, r.path, r.template),
      ),
    clearRequests: () => {
      state.requests.length = 0
    },
    failNext: (failure) => {
      state.failures.push({ ...failure, remaining: failure.count ?? 1 })
    },
    clearFailures: () => {
      state.failures.length = 0
    },
    holdNext: ({ method, path }) => {
      const arrived = Promise.withResolvers<void>()
      const released = Promise.withResolvers<void>()
      state.holds.push({
        method,
        path,
        remaining: 1,
        arrived: arrived.resolve,
        released: released.promise,
      })
      return { arrived: arrived.promise, release: released.resolve }
    },
    inbox: (userId) => state.inboxes.get(userId) ?? [],
    richMenuOf: (userId) => state.users.get(userId)?.richMenuId ?? state.defaultRichMenuId,
    missInNextBulkLink: (userId) => {
      state.bulkLinkMisses.add(userId)
    },
    markNotInChannel: (userId) => {
      state.notInChannel.add(userId)
    },
    refuseInMulticast: (userId) => {
      state.refusedInMulticast.add(userId)
    },
    webhookDeliveries: state.webhookDeliveries,
    get webhookUrl() {
      return ctx.webhookUrl
    },
    setWebhookUrl: (url) => {
      ctx.webhookUrl = url
    },
    setRateLimit: (key, limit) => ctx.limiter.set(key, limit),
    setQuota: (limit) => {
      state.quota.limit = limit
    },
    buildEvent: (kind, userId, input, eventOpts) => buildEvent(ctx, kind, userId, input, eventOpts),
    envelope: (events) => envelope(ctx, events),
    deliverWebhook: (body, deliverOpts) =>
      deliverWebhook(ctx, Array.isArray(body) ? envelope(ctx, body) : body, deliverOpts),
    context: ctx,
  }
}

/** Starts the api host and the data host on their own ports (the SDK drops URL path prefixes). */
export async function startLinePlatform(opts: LinePlatformOptions): Promise<LinePlatform> {
  const platform = createLinePlatform(opts)
  const host = opts.host ?? '127.0.0.1'
  const api = await listen(platform.apiApp, host, opts.apiPort ?? 0)
  const data = await listen(platform.dataApp, host, opts.dataPort ?? 0).catch(async (error) => {
    await closeServer(api.server)
    throw error
  })
  return Object.assign(platform, {
    apiBaseUrl: api.url,
    dataApiBaseUrl: data.url,
    async close() {
      platform.context.closing.abort()
      await Promise.all([closeServer(api.server), closeServer(data.server)])
    },
  })
}

function listen(app: Hono<SandboxEnv>, host: string, port: number) {
  return new Promise<{ server: Server; url: string }>((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: host }, (info: AddressInfo) => {
      const name = info.family === 'IPv6' ? `[${info.address}]` : info.address
      resolve({ server, url: `http://${name}:${info.port}` })
    }) as Server
    server.once('error', reject)
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
