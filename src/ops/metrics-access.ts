import type { HttpBindings } from '@hono/node-server'
import type { Context, MiddlewareHandler } from 'hono'
import type { Env } from '../config/env.ts'
import { AppError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import { sameSecret } from '../platform/secrets.ts'

/** The peers a request straight from this host comes from (`::ffff:` a server on `::` sees). */
const LOOPBACK_PEERS = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1'])

/**
 * Headers a proxy adds: behind one on this host, every request from the internet reaches us from
 * loopback. (A proxy that adds none still looks local: the README says to set METRICS_TOKEN.)
 */
const FORWARDED = /^(forwarded|x-forwarded-.+|x-real-ip|via)$/

/**
 * Who may read GET /metrics (webhook and delivery counts, queue depths, process details): with
 * METRICS_TOKEN, whoever sends `Authorization: Bearer <it>`; without, only a request straight
 * from loopback (a scraper or bench on this host).
 */
export function metricsAccess(env: Pick<Env, 'METRICS_TOKEN'>): MiddlewareHandler<AppEnv> {
  const token = env.METRICS_TOKEN
  return async (c, next) => {
    if (token !== undefined) checkBearer(c, token)
    else if (!isStraightFromLoopback(c)) {
      throw new AppError(
        'FORBIDDEN',
        '/metrics answers only requests straight from this host (not through a proxy): set METRICS_TOKEN and scrape with Authorization: Bearer <METRICS_TOKEN>',
      )
    }
    await next()
  }
}

function checkBearer(c: Context<AppEnv>, token: string): void {
  const given = c.req.header('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1]
  if (given !== undefined && sameSecret(given, token)) return
  c.header('www-authenticate', 'Bearer')
  throw new AppError(
    'UNAUTHORIZED',
    given === undefined
      ? '/metrics wants the metrics token: send Authorization: Bearer <METRICS_TOKEN>'
      : 'the Bearer token sent is not METRICS_TOKEN',
  )
}

function isStraightFromLoopback(c: Context<AppEnv>): boolean {
  // Node's own message, when there is one (app.request() in a script has none: not loopback).
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming
  const peer = incoming?.socket.remoteAddress
  if (peer === undefined || !LOOPBACK_PEERS.has(peer)) return false
  return !Object.keys(incoming?.headers ?? {}).some((name) => FORWARDED.test(name))
}

/**
 * Logged at start when Kizuna has a public address but no METRICS_TOKEN: behind a proxy on this
 * host that adds no forwarding header (nginx's plain `proxy_pass`), every request looks local
 * and /metrics is open to the internet.
 */
export function openMetricsWarning(env: Pick<Env, 'METRICS_TOKEN' | 'PUBLIC_BASE_URL'>) {
  if (env.METRICS_TOKEN !== undefined || env.PUBLIC_BASE_URL === undefined) return null
  return (
    'METRICS_TOKEN is unset: /metrics answers any request that reaches it from this host, and a ' +
    'proxy here that adds no X-Forwarded-For passes the internet to it as local; set ' +
    'METRICS_TOKEN (or do not pass /metrics through the proxy)'
  )
}
