import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Socket } from 'node:net'

/**
 * A TCP proxy in front of a real server (Redis, Postgres) that a test can freeze: while frozen
 * it forwards nothing in either direction and closes nothing, like a network partition (the
 * peer neither answers nor resets the connection). It can also cut: every connection is reset
 * and new ones are refused until it is restored, like a server that went down.
 */
export async function startFrozenProxy(target: { host: string; port: number }) {
  let frozen = false
  let cut = false
  const sockets = new Set<Socket>()
  const silenced = new Set<Socket>()
  const server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(target.port, target.host)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    const passes = () => !frozen && !silenced.has(client)
    client.on('data', (chunk) => {
      if (passes()) upstream.write(chunk)
    })
    upstream.on('data', (chunk) => {
      if (passes()) client.write(chunk)
    })
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    freeze() {
      frozen = true
    },
    cut() {
      cut = true
      for (const s of sockets) s.resetAndDestroy()
    },
    restore() {
      cut = false
    },
    /**
     * The connections open now forward nothing any more, and are never closed; new ones pass:
     * a failover, or a firewall that silently dropped them (the old peer never answers again).
     */
    silenceExisting() {
      for (const s of sockets) silenced.add(s)
    },
    async close() {
      for (const s of sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** A frozen proxy in front of the Postgres of `databaseUrl`, with the URL that goes through it. */
export async function startDatabaseProxy(databaseUrl: string) {
  const target = new URL(databaseUrl)
  const proxy = await startFrozenProxy({
    host: target.hostname,
    port: Number(target.port || 5432),
  })
  const url = new URL(databaseUrl)
  url.host = `127.0.0.1:${proxy.port}`
  return { ...proxy, url: url.toString() }
}
