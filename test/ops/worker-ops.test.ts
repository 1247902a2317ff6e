import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postWebhook, startTestKizuna, type TestKizuna } from '../support/harness.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna({ ROLE: 'worker' })
})
afterAll(async () => {
  await k.stopAll()
})

describe('a ROLE=worker process', () => {
  it('serves /healthz, /readyz and /metrics with the counters only workers increment', async () => {
    expect((await fetch(`${k.baseUrl}/healthz`)).status).toBe(200)
    const ready = await fetch(`${k.baseUrl}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })
    const metrics = await fetch(`${k.baseUrl}/metrics`)
    expect(metrics.status).toBe(200)
    const text = await metrics.text()
    expect(text).toContain('# TYPE kizuna_jobs_total counter')
    expect(text).toContain('# TYPE kizuna_line_calls_total counter')
  })

  it('serves nothing else: the webhook and the APIs are the web role’s', async () => {
    expect((await postWebhook(k.baseUrl, '{"destination":"x","events":[]}')).status).toBe(404)
    expect((await fetch(`${k.baseUrl}/api/customers`)).status).toBe(404)
  })

  it('closes its server on stop', async () => {
    const w = await startTestKizuna({ ROLE: 'worker' })
    expect((await fetch(`${w.baseUrl}/healthz`)).status).toBe(200)
    await w.stopAll()
    await expect(fetch(`${w.baseUrl}/healthz`)).rejects.toThrow()
  })
})
