import { newUserId, notifyPage, type SandboxContext, type SimUser } from './state.ts'
import { buildEvent, type EventInputs, type EventKind, envelope } from './webhook-events.ts'
import { deliverWebhook, type WebhookResult } from './webhook-sender.ts'

/** What LINE's account-link dialog URL carries (`?linkToken=…&nonce=…`, LINE-API.md §6). */
export type AccountLinkDialog = { linkToken: string; nonce: string }

export type NewUser = {
  displayName?: string
  language?: string
  pictureUrl?: string
  statusMessage?: string
}

/** Simulated LINE users: each action changes state and POSTs the signed webhook LINE would send. */
export type SimUsers = {
  /** A new LINE user who hasn't added the bot yet (`U` + 32 hex). */
  create(input?: NewUser): SimUser
  get(userId: string): SimUser | undefined
  list(): SimUser[]
  /**
   * Adds the bot as a friend; after a block this is an unblock (`follow.isUnblocked: true`).
   * Already a friend: nothing happens and nothing is sent (undefined), as in the LINE app.
   */
  follow(userId: string): Promise<WebhookResult | undefined>
  /**
   * Blocks the bot: sends `unfollow`; pushes then return 200 but are dropped. Only a friend can
   * unfollow: for anyone else nothing happens and nothing is sent (undefined).
   */
  block(userId: string): Promise<WebhookResult | undefined>
  /** Sends text as the user: it shows in their chat as their own message. */
  sendText(userId: string, text: string): Promise<WebhookResult>
  /**
   * Taps a postback action. Its `displayText`, if any, shows in the chat as the user's own
   * message, as the LINE app does; the bot gets only the postback event.
   */
  postback(
    userId: string,
    data: string,
    params?: Record<string, string>,
    displayText?: string,
  ): Promise<WebhookResult>
  /**
   * The user opens LINE's account-link dialog: with a link token unused and under 10 minutes
   * old, and a nonce of 10 to 255 characters, LINE sends the `accountLink` event and the token
   * is spent. Its `result` is `failed` (no source, no reply token) when the token was issued for
   * another user (an impersonation) or when `result` says so. Anything else sends no event; this
   * rejects with what the user would see (LINE-API.md §6).
   */
  accountLink(
    userId: string,
    dialog: AccountLinkDialog,
    result?: 'ok' | 'failed',
  ): Promise<WebhookResult>
}

export function createSimUsers(ctx: SandboxContext): SimUsers {
  const { users } = ctx.state
  let created = 0
  const mustGet = (userId: string): SimUser => {
    const user = users.get(userId)
    if (!user) throw new Error(`unknown simulated user ${userId}`)
    return user
  }
  /** The user talks to the bot: allowed unless blocked, and it answers the last message. */
  const answer = (user: SimUser) => {
    assertCanTalk(user)
    user.answeredMessages = ctx.state.inboxes.get(user.userId)?.length ?? 0
  }
  /** What the user says shows in their chat as their bubble, before the bot hears of it. */
  const say = (userId: string, text: string) => {
    ctx.state.feed.push({ userId, kind: 'sent', at: ctx.now(), text })
  }
  /** The user's event goes to the bot once the page has been told what the user did. */
  const send = <K extends EventKind>(kind: K, userId: string, input: EventInputs[K]) => {
    notifyPage(ctx)
    return deliverWebhook(ctx, envelope(ctx, [buildEvent(ctx, kind, userId, input)]))
  }

  return {
    create(input = {}) {
      created += 1
      const user: SimUser = {
        userId: newUserId(),
        displayName: input.displayName ?? `Sandbox user ${created}`,
        language: input.language ?? 'ja',
        friendship: 'none',
        createdAt: ctx.now(),
        ...(input.pictureUrl ? { pictureUrl: input.pictureUrl } : {}),
        ...(input.statusMessage ? { statusMessage: input.statusMessage } : {}),
      }
      users.set(user.userId, user)
      ctx.state.feed.push({ userId: user.userId, kind: 'joined' })
      notifyPage(ctx)
      return user
    },
    get: (userId) => users.get(userId),
    list: () => [...users.values()],
    async follow(userId) {
      const user = mustGet(userId)
      if (user.friendship === 'friend') return undefined
      const isUnblocked = user.friendship === 'blocked'
      user.friendship = 'friend'
      return send('follow', userId, { isUnblocked })
    },
    async block(userId) {
      const user = mustGet(userId)
      if (user.friendship !== 'friend') return undefined
      user.friendship = 'blocked'
      return send('unfollow', userId, {})
    },
    sendText(userId, text) {
      answer(mustGet(userId))
      say(userId, text)
      return send('text', userId, { text })
    },
    postback(userId, data, params, displayText) {
      answer(mustGet(userId))
      if (displayText) say(userId, displayText)
      return send('postback', userId, params ? { data, params } : { data })
    },
    async accountLink(userId, { linkToken, nonce }, result = 'ok') {
      const issued = ctx.state.linkTokens.get(linkToken)
      if (!issued || issued.expiresAt <= ctx.now()) {
        throw new Error('This link token is unknown, used or expired: tap "Link account" again.')
      }
      if (nonce.length < 10 || nonce.length > 255) {
        throw new Error(`The nonce must be 10 to 255 characters (is ${nonce.length}).`)
      }
      mustGet(userId)
      ctx.state.linkTokens.delete(linkToken)
      // Opened in another user's LINE (an impersonation): LINE sends `failed`, without source
      // or reply token (LINE-API.md §6), and the token is spent all the same.
      const outcome = issued.userId === userId ? result : 'failed'
      return send('accountLink', userId, { nonce, result: outcome })
    },
  }
}

function assertCanTalk(user: SimUser): void {
  if (user.friendship === 'blocked') {
    throw new Error(`simulated user ${user.userId} has blocked the bot; call follow() first`)
  }
}
