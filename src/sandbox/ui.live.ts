import type { Context } from 'hono'
import type { SSEStreamingApi } from 'hono/streaming'
import { streamSSE } from 'hono/streaming'
import type { SandboxPlatform } from './platform.ts'
import { chatLineView, quickReplyView } from './ui.messages.ts'
import { userParts } from './ui.user.ts'

/**
 * `GET events`: what the open page shows, as Server-Sent Events, so it follows changes without
 * a reload. Chat lines (messages users receive, and those they send) are `message` events:
 * event `id` N is the Nth entry of the feed, and the page asks for those after the ones it drew
 * (`?after=`, which the browser's `Last-Event-ID` replaces on a reconnect). Each user's status
 * line and rich menu (linked, unlinked, switched, a new default, gone after a block) are `part`
 * events, sent once when the stream opens (the page may be older) and again when they change.
 * The stream ends when the page goes away or the sandbox closes (a server waits for open
 * streams when it stops).
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

/** Feed entry `id` (1-based) as a `message` event. */
async function writeChatLine(
  platform: SandboxPlatform,
  stream: SSEStreamingApi,
  logged: (typeof platform.context.state.feed)[number],
  id: number,
): Promise<void> {
  const inbox = platform.inbox(logged.userId)
  const user = platform.context.state.users.get(logged.userId)
  if (!user) return
  const view = String(await chatLineView(inbox, logged))
  // The line is the latest the page shows: a message's quick replies replace any before; the
  // user's own message answers them (none then).
  const quick =
    logged.kind === 'received'
      ? quickReplyView(user, inbox, logged.index)
      : quickReplyView(user, inbox)
  // JSON keeps it on one `data:` line; the page inserts `html` as the renderer wrote it.
  await stream.writeSSE({
    id: String(id),
    data: JSON.stringify({ user: logged.userId, html: view, quick }),
  })
}

/** Each user's parts this stream has not sent as they are now, as `part` events. */
async function writeParts(
  platform: SandboxPlatform,
  stream: SSEStreamingApi,
  sent: Map<string, string>,
): Promise<void> {
  for (const user of platform.context.state.users.values()) {
    const parts = await userParts(platform, user)
    for (const [part, { v, html }] of Object.entries(parts)) {
      const key = `${user.userId} ${part}`
      if (sent.get(key) === v) continue
      sent.set(key, v)
      await stream.writeSSE({
        event: 'part',
        data: JSON.stringify({ user: user.userId, part, v, html }),
      })
    }
  }
}

/**
 * Opens the page's one stream. Each chat line goes at the end of its user's chat, its quick
 * replies replacing the chips shown under the chat; a part replaces the user's part of that
 * name unless it is the same (`data-v`). Users created since the page was drawn have no
 * section on it; they show on the next load.
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
    var quick = section.querySelector('.quick-replies')
    if (quick) quick.innerHTML = update.quick || ''
  }
  source.addEventListener('part', function (event) {
    var update = parse(event)
    var section = update && sectionOf(update.user)
    var parts = section ? section.querySelectorAll('[data-part]') : []
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i]
      if (part.getAttribute('data-part') !== update.part) continue
      if (part.getAttribute('data-v') !== update.v) part.outerHTML = update.html
    }
  })
  window.addEventListener('pagehide', function () { source.close() })
})()
`
