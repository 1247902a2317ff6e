import { once } from 'node:events'
import { createServer } from 'node:net'
import { networkInterfaces } from 'node:os'

/** A loopback port free right now, for a process a test starts (a private Redis, `npm start`). */
export async function sparePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (!address || typeof address === 'string') throw new Error('no spare port')
  return address.port
}

/** An IPv4 address of this machine other than loopback, if it has one. */
export function networkAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
  return all.find((a) => a.family === 'IPv4' && !a.internal)?.address
}

/** Said in the name of a test that needs networkAddress() when this machine has none. */
export const NO_NETWORK = networkAddress()
  ? ''
  : ' (skipped: this machine has no non-loopback IPv4 address to connect from)'
