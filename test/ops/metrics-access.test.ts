import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOpsApp } from '../../src/ops/ops.app.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { NO_NETWORK, networkAddress } from '../support/ports.ts'

const TOKEN = 'metrics-token-0123456789abcdef'
const METRICS_TEXT = '# TYPE kizuna_http_request_seconds histogram'

/** This machine's address on the network: requests to it come from a non-loopback peer. */
const outside = networkAddress()

let open: TestKizuna
let guarded: TestKizuna

beforeAll(async () => {
  ;[open, guarded] = await Promise.all([
    startTestKizuna(),
    startTestKizuna({ METRICS_TOKEN: TOKEN }),
  ])
})
afterAll(async () => {
  await Promise.all([open?.stopAll(), guarded?.stopAll()])
})

/** The same server, reached through this machine's network address (it listens on 0.0.0.0). */
function fromOutside(k: TestKizuna, path: string): string {
  return `http://${outside}:${k.port}${path}`
}

describe('GET /metrics with METRICS_TOKEN set', () => {
  it('wants Authorization: Bearer <token>, even from loopback, and says so', async () => {
    const res = await fetch(`${guarded.baseUrl}/metrics`)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer')
    const error = await errorOf(res)
    expect(error.code).toBe('UNAUTHORIZED')
    expect(error.message).toMatch(/Authorization: Bearer <METRICS_TOKEN>/)
    expect(error.requestId).toBe(res.headers.get('x-request-id'))

    const basic = await fetch(`${guarded.baseUrl}/metrics`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` },
    })
    expect(basic.status).toBe(401)
    expect((await errorOf(basic)).message).toMatch(/Authorization: Bearer <METRICS_TOKEN>/)
  })

  it('refuses a wrong token, one a character short or long too', async () => {
    for (const wrong of ['x'.repeat(TOKEN.length), TOKEN.slice(0, -1), `${TOKEN}0`]) {
      const res = await fetch(`${guarded.baseUrl}/metrics`, {
        headers: { authorization: `Bearer ${wrong}` },
      })
      expect(res.status, wrong).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer')
      const error = await errorOf(res)
      expect(error.code).toBe('UNAUTHORIZED')
      expect(error.message).toMatch(/not METRICS_TOKEN/)
    }
  })

  it('serves the metrics text for the right token', async () => {
    const res = await fetch(`${guarded.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await res.text()).toContain(METRICS_TEXT)
  })

  it.skipIf(!outside)(
    `serves it to a scraper on the network with the token${NO_NETWORK}`,
    async () => {
      const res = await fetch(fromOutside(guarded, '/metrics'), {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      expect(res.status).toBe(200)
      expect(await res.text()).toContain(METRICS_TEXT)
      expect((await fetch(fromOutside(guarded, '/metrics'))).status).toBe(401)
    },
  )
})

describe('GET /metrics without METRICS_TOKEN', () => {
  it('serves a request straight from loopback (as the bench reads it)', async () => {
    const res = await fetch(`http://127.0.0.1:${open.port}/metrics`)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain(METRICS_TEXT)
  })

  it('refuses a loopback request a proxy forwarded, telling the operator to set METRICS_TOKEN', async () => {
    for (const [name, value] of [
      ['x-forwarded-for', '203.0.113.7'],
      ['forwarded', 'for=203.0.113.7'],
      ['x-real-ip', '203.0.113.7'],
      ['x-forwarded-for', '127.0.0.1'],
      ['x-forwarded-proto', 'https'],
      ['via', '1.1 proxy'],
    ] as const) {
      const res = await fetch(`${open.baseUrl}/metrics`, { headers: { [name]: value } })
      expect(res.status, name).toBe(403)
      const error = await errorOf(res)
      expect(error.code).toBe('FORBIDDEN')
      expect(error.message).toMatch(/set METRICS_TOKEN/)
    }
  })

  it.skipIf(!outside)(`refuses a peer on the network${NO_NETWORK}`, async () => {
    const res = await fetch(fromOutside(open, '/metrics'))
    expect(res.status).toBe(403)
    const error = await errorOf(res)
    expect(error.code).toBe('FORBIDDEN')
    expect(error.message).toMatch(/set METRICS_TOKEN/)
    // Health checks stay public: a load balancer on the network probes them.
    expect((await fetch(fromOutside(open, '/healthz'))).status).toBe(200)
    expect((await fetch(fromOutside(open, '/readyz'))).status).toBe(200)
  })

  it('serves IPv6 loopback and IPv4 loopback mapped into IPv6 (a server on ::)', async () => {
    // The shipped server listens on 0.0.0.0; one on :: sees ::1 and ::ffff:127.0.0.1 peers.
    const server = serve({ fetch: createOpsApp(open.deps).fetch, port: 0, hostname: '::' })
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    const { port } = server.address() as AddressInfo
    try {
      for (const host of ['[::1]', '127.0.0.1']) {
        const res = await fetch(`http://${host}:${port}/metrics`)
        expect(res.status, host).toBe(200)
        expect(await res.text()).toContain('# TYPE kizuna_jobs_total counter')
      }
    } finally {
      server.close()
      if ('closeAllConnections' in server) server.closeAllConnections()
    }
  })
})
