import { Agent, setGlobalDispatcher } from 'undici'

let tuned = false

/**
 * The LINE SDK calls the global fetch (profiles, link tokens, rich menus; sends have their own
 * pool in line-send-transport.ts). One keep-alive pool per origin keeps those calls on warm
 * sockets instead of new connections.
 */
export function tuneHttpClient(): void {
  if (tuned) return
  tuned = true
  setGlobalDispatcher(
    new Agent({ connections: 64, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 }),
  )
}
