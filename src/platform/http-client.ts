import { Agent, setGlobalDispatcher } from 'undici'

let tuned = false

/**
 * The LINE SDK calls the global fetch. Its default dispatcher opens connections without bound
 * and tears them down early; at LINE's 2,000 pushes a second that is most of a process's CPU.
 * One keep-alive pool per origin, sized for the rate, makes each call a write on a warm socket.
 */
export function tuneHttpClient(): void {
  if (tuned) return
  tuned = true
  setGlobalDispatcher(
    new Agent({ connections: 64, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 }),
  )
}
