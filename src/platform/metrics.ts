import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'

export type Metrics = ReturnType<typeof createMetrics>

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry()
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry })
  return {
    registry,
    webhookEvents: new Counter({
      name: 'kizuna_webhook_events_total',
      help: 'LINE webhook events by type and outcome (received, duplicate, processed outcomes)',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    webhookRequests: new Histogram({
      name: 'kizuna_webhook_request_seconds',
      help: 'Time to answer a LINE webhook request',
      labelNames: ['status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
      registers: [registry],
    }),
    httpRequests: new Histogram({
      name: 'kizuna_http_request_seconds',
      help: 'Time to answer an HTTP request, by route template, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      // Fine around the register scan's goal (15 ms at p99).
      buckets: [
        0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1,
        2.5,
      ],
      registers: [registry],
    }),
    jobs: new Counter({
      name: 'kizuna_jobs_total',
      help: 'Queue jobs by queue and outcome',
      labelNames: ['queue', 'outcome'] as const,
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'kizuna_deliveries_total',
      help: 'Delivery attempts by channel and outcome (sent, skipped, deferred, rate_limited, quota_exceeded, ...)',
      labelNames: ['channel', 'status'] as const,
      registers: [registry],
    }),
    linkAssertionBadSignatures: new Counter({
      name: 'kizuna_link_assertion_bad_signatures_total',
      help: "Shop login assertions refused at /link/callback for a bad signature (LINK_ASSERTION_SECRET not the shop login's, or forged)",
      registers: [registry],
    }),
    sweepStepFailures: new Counter({
      name: 'kizuna_sweep_step_failures_total',
      help: "Sweeper steps that failed (events, deliveries, profiles, unlinks); the sweep's other steps ran",
      labelNames: ['step'] as const,
      registers: [registry],
    }),
    lineCalls: new Counter({
      name: 'kizuna_line_calls_total',
      help: 'Calls to the LINE platform by endpoint and HTTP status',
      labelNames: ['endpoint', 'status'] as const,
      registers: [registry],
    }),
  }
}
