import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { createServer, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, testEnv } from '../support/harness.ts'
import { NO_NETWORK, networkAddress } from '../support/ports.ts'
import { createPrivateDatabase } from '../support/private-database.ts'

/** A GET naming `host` in its Host header (fetch sets its own). */
function getWithHost(port: number, host: string, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function stop(k: Kizuna): Promise<void> {
  const queues = Object.values(k.deps.queues.byName)
  await Promise.all(queues.map((q) => q.obliterate({ force: true }).catch(() => {})))
  await k.stop()
}

/** This machine's address on the network: requests to it come from a non-loopback peer. */
const outside = networkAddress()

/**
 * The sandbox's settings: no LINE credentials, and a database of its own (the shared test
 * database serves the test channel, and refuses the sandbox's).
 */
let sandboxDatabase: Awaited<ReturnType<typeof createPrivateDatabase>>
beforeAll(async () => {
  sandboxDatabase = await createPrivateDatabase()
})
afterAll(() => sandboxDatabase?.drop())
const sandboxEnv = (overrides: Record<string, string> = {}) =>
  testEnv({
    LINE_CHANNEL_SECRET: '',
    LINE_CHANNEL_ACCESS_TOKEN: '',
    DATABASE_URL: sandboxDatabase.url,
    ...overrides,
  })

/** Kizuna in sandbox mode (no LINE credentials). */
function startSandbox(): Promise<Kizuna> {
  return startKizuna(sandboxEnv(), {
    queuePrefix: `test-${randomUUID()}`,
    log: createLogger('silent'),
  })
}

describe('the address Kizuna listens on', () => {
  it('in sandbox mode listens on loopback only', async () => {
    const k = await startSandbox()
    try {
      expect(k.sandbox).not.toBeNull()
      expect(k.host).toBe('127.0.0.1')
      expect((await fetch(`${k.baseUrl}/sandbox`)).status).toBe(200)
    } finally {
      await stop(k)
    }
  })

  it.skipIf(!outside)(
    `in sandbox mode does not answer /sandbox on this machine's network address${NO_NETWORK}`,
    async () => {
      const k = await startSandbox()
      try {
        // Answering on loopback, so a refusal on the network address is the listen address.
        expect((await fetch(`${k.baseUrl}/sandbox`)).status).toBe(200)
        await expect(fetch(`http://${outside}:${k.port}/sandbox`)).rejects.toThrow()
      } finally {
        await stop(k)
      }
    },
  )

  it('in sandbox mode answers only requests naming a loopback host (DNS rebinding)', async () => {
    const k = await startSandbox()
    try {
      // A web page whose name an attacker re-pointed at 127.0.0.1 reaches the port, but its
      // requests name the attacker's host.
      const rebound = await getWithHost(
        k.port,
        `rebind.attacker.example:${k.port}`,
        '/sandbox/mail',
      )
      expect(rebound.status).toBe(403)
      expect(rebound.body).not.toContain('Sandbox mailbox')
      for (const host of [`localhost:${k.port}`, `127.0.0.1:${k.port}`, `[::1]:${k.port}`]) {
        expect((await getWithHost(k.port, host, '/sandbox/mail')).status).toBe(200)
      }
    } finally {
      await stop(k)
    }
  })

  it('in sandbox mode refuses requests naming PUBLIC_BASE_URL (a proxy passing its Host on)', async () => {
    // loadEnv refuses a public PUBLIC_BASE_URL without LINE credentials; were one to get
    // through, a proxy on this host relaying shoppers' requests must still not reach /sandbox
    // (act as any LINE user) or /sandbox/mail (link codes, addresses).
    const env = { ...sandboxEnv(), PUBLIC_BASE_URL: 'https://crm.shop.example' }
    const k = await startKizuna(env, {
      queuePrefix: `test-${randomUUID()}`,
      log: createLogger('silent'),
    })
    try {
      for (const path of ['/sandbox/', '/sandbox/mail']) {
        const proxied = await getWithHost(k.port, 'crm.shop.example', path)
        expect(proxied.status, path).toBe(403)
        expect(JSON.parse(proxied.body)).toMatchObject({ error: { code: 'FORBIDDEN' } })
        expect((await getWithHost(k.port, `127.0.0.1:${k.port}`, path)).status).toBe(200)
      }
    } finally {
      await stop(k)
    }
  })

  it('with real LINE credentials is every interface', async () => {
    const k = await startTestKizuna()
    try {
      expect(k.sandbox).toBeNull()
      expect(k.host).toBe('0.0.0.0')
    } finally {
      await k.stopAll()
    }
  })

  it('when PORT is taken, start-up fails naming PORT (no crash on an unhandled error event)', async () => {
    const taken: Server = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const env = sandboxEnv({ PORT: String(port) })
      await expect(
        startKizuna(env, { queuePrefix: `test-${randomUUID()}`, log: createLogger('silent') }),
      ).rejects.toThrow(`PORT ${port} is in use`)
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
  })
})
