import type { Context } from 'hono'
import type { SSEStreamingApi } from 'hono/streaming'
import { streamSSE } from 'hono/streaming'
import type { SandboxPlatform } from './platform.ts'
import type { FeedEntry } from './state.ts'
import { chatLineView } from './ui.messages.ts'
import { type Part, pageParts, userParts, userSection } from './ui.parts.ts'

/**
 * `GET events`: what the open page shows, as Server-Sent Events, so it follows changes without
 * a reload (its own posts included: it posts with fetch). The feed comes in order: chat lines
 * (messages users receive, and those they send) as `message` events, new users as `section`
 * events; event `id` N is the Nth entry of the feed, and the page asks for those after the ones
 * it drew (`?after=`, which the browser's `Last-Event-ID` replaces on a reconnect). The parts
 * (ui.parts.ts: each user's status line, buttons, quick replies, message bar and rich menu, and
 * the page's webhook status) are `part` events, sent once when the stream opens (the page may
 * be older) and again when they change. The stream ends when the page goes away or the sandbox
 * closes (a server waits for open streams when it stops).
 */
export function liveEvents(platform: SandboxPlatform) {
  const { state, closing } = platform.context
  return (c: Context) => {
    const from = Number(c.req.header('last-event-id') ?? c.req.query('after') ?? Number.NaN)
    let next =
      Number.isSafeInteger(from) && from >= 0
        ? Math.min(from, state.feed.length)
        : state.feed.length
    return streamSSE(c, async (stream) => {
      let wake = () => {}
      let changed = true
      const listener = () => {
        changed = true
        wake()
      }
      const ended = () => stream.aborted || stream.closed || closing.signal.aborted
      /** What this stream last sent of each part, by `user part`. */
      const sent = new Map<string, string>()
      state.pageListeners.add(listener)
      closing.signal.addEventListener('abort', listener)
      stream.onAbort(listener)
      try {
        while (!ended()) {
          const logged = state.feed[next]
          if (logged) {
            next += 1
            await writeChatLine(platform, stream, logged, next)
          } else if (changed) {
            changed = false
            await writeParts(platform, stream, sent)
          } else {
            await new Promise<void>((resolve) => {
              wake = resolve
            })
          }
        }
      } finally {
        state.pageListeners.delete(listener)
        closing.signal.removeEventListener('abort', listener)
      }
    })
  }
}

/**
 * Feed entry `id` (1-based): a chat line as a `message` event, a new user as a `section` event
 * (the section's chat holds the feed before `id`, so the stream's later lines are not in it).
 */
async function writeChatLine(
  platform: SandboxPlatform,
  stream: SSEStreamingApi,
  logged: FeedEntry,
  id: number,
): Promise<void> {
  const user = platform.context.state.users.get(logged.userId)
  if (!user) return
  const joined = logged.kind === 'joined'
  const view = joined
    ? await userSection(platform, user, id)
    : await chatLineView(platform.inbox(logged.userId), logged)
  // JSON keeps it on one `data:` line; the page inserts `html` as the renderer wrote it.
  await stream.writeSSE({
    id: String(id),
    event: joined ? 'section' : undefined,
    data: JSON.stringify({ user: logged.userId, html: String(view) }),
  })
}

/**
 * The page's and each user's parts this stream has not sent as they are now, as `part` events
 * (`user` '' for the page's own).
 */
async function writeParts(
  platform: SandboxPlatform,
  stream: SSEStreamingApi,
  sent: Map<string, string>,
): Promise<void> {
  const write = async (user: string, parts: Record<string, Part>) => {
    for (const [part, { v, html }] of Object.entries(parts)) {
      const key = `${user} ${part}`
      if (sent.get(key) === v) continue
      sent.set(key, v)
      await stream.writeSSE({ event: 'part', data: JSON.stringify({ user, part, v, html }) })
    }
  }
  await write('', await pageParts(platform))
  for (const user of platform.context.state.users.values()) {
    await write(user.userId, await userParts(platform, user))
  }
}

/**
 * Opens the page's one stream. Each chat line goes at the end of its user's chat; a new user's
 * section at the end of the page; a part replaces the user's (or the page's) part of that name
 * unless it is the same (`data-v`).
 */
export const LIVE_SCRIPT = `
(function () {
  if (!window.EventSource) return
  var source = new EventSource('events?after=' + encodeURIComponent(document.body.getAttribute('data-feed')))
  function sectionOf(user) {
    var sections = document.querySelectorAll('section[data-user]')
    for (var i = 0; i < sections.length; i++) {
      if (sections[i].getAttribute('data-user') === user) return sections[i]
    }
  }
  function parse(event) {
    try { return JSON.parse(event.data) } catch (e) { return undefined }
  }
  source.onmessage = function (event) {
    var update = parse(event)
    var section = update && sectionOf(update.user)
    if (!section) return
    var chat = section.querySelector('.chat')
    if (chat) chat.insertAdjacentHTML('beforeend', update.html)
  }
  source.addEventListener('section', function (event) {
    var update = parse(event)
    var users = document.querySelector('.users')
    if (!update || !users || sectionOf(update.user)) return
    var none = users.querySelector('.no-users')
    if (none) none.remove()
    users.insertAdjacentHTML('beforeend', update.html)
  })
  source.addEventListener('part', function (event) {
    var update = parse(event)
    var scope = update && (update.user ? sectionOf(update.user) : document.body)
    var parts = scope ? scope.querySelectorAll('[data-part]') : []
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i]
      if (part.getAttribute('data-part') !== update.part) continue
      if (part.getAttribute('data-v') !== update.v) part.outerHTML = update.html
    }
  })
  window.addEventListener('pagehide', function () { source.close() })
})()
`
