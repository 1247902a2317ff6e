import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { SandboxPlatform } from './platform.ts'
import { chatLineView, quickReplyView } from './ui.messages.ts'

/**
 * `GET events`: the lines of users' chats (messages they receive, and those they send), as
 * Server-Sent Events, so the open page shows Kizuna's replies (sent later, from its queue) and
 * what a user said elsewhere (another tab, a test) without a reload. Event `id` N is the Nth
 * entry of the feed; the page asks for those after the ones it drew (`?after=`, which the
 * browser's `Last-Event-ID` replaces on a reconnect). The stream ends when the page goes away
 * or the sandbox closes (a server waits for open streams when it stops).
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
      const listener = () => wake()
      const ended = () => stream.aborted || stream.closed || closing.signal.aborted
      state.feedListeners.add(listener)
      closing.signal.addEventListener('abort', listener)
      stream.onAbort(listener)
      try {
        while (!ended()) {
          const logged = state.feed[next]
          if (!logged) {
            await new Promise<void>((resolve) => {
              wake = resolve
            })
            continue
          }
          next += 1
          const inbox = platform.inbox(logged.userId)
          const user = state.users.get(logged.userId)
          if (!user) continue
          const view = String(await chatLineView(inbox, logged))
          // The line is the latest the page shows: a message's quick replies replace any
          // before; the user's own message answers them (none then).
          const quick =
            logged.kind === 'received'
              ? quickReplyView(user, inbox, logged.index)
              : quickReplyView(user, inbox)
          // JSON keeps it on one `data:` line; the page inserts `html` as the renderer wrote it.
          await stream.writeSSE({
            id: String(next),
            data: JSON.stringify({ user: logged.userId, html: view, quick }),
          })
        }
      } finally {
        state.feedListeners.delete(listener)
        closing.signal.removeEventListener('abort', listener)
      }
    })
  }
}

/**
 * Opens the page's one stream and appends each message to its user's chat, its quick replies
 * replacing the chips shown under the chat. Users created
 * since the page was drawn have no chat on it; their messages show on the next load.
 */
export const LIVE_SCRIPT = `
(function () {
  if (!window.EventSource) return
  var source = new EventSource('events?after=' + encodeURIComponent(document.body.getAttribute('data-feed')))
  source.onmessage = function (event) {
    var update
    try { update = JSON.parse(event.data) } catch (e) { return }
    var sections = document.querySelectorAll('section[data-user]')
    for (var i = 0; i < sections.length; i++) {
      if (sections[i].getAttribute('data-user') !== update.user) continue
      var chat = sections[i].querySelector('.chat')
      if (chat) chat.insertAdjacentHTML('beforeend', update.html)
      var quick = sections[i].querySelector('.quick-replies')
      if (quick) quick.innerHTML = update.quick || ''
    }
  }
  window.addEventListener('pagehide', function () { source.close() })
})()
`
