import type { Env } from '../config/env.ts'
import type { Deps } from '../platform/deps.ts'

/**
 * Where shoppers' phones (through LINE's image proxy) reach this server: `PUBLIC_BASE_URL`, or
 * for a local first run `http://localhost:PORT`.
 */
export function publicBaseUrl(env: Pick<Env, 'PUBLIC_BASE_URL' | 'PORT'>): string {
  return (env.PUBLIC_BASE_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '')
}

export function barcodeImageUrl(env: Pick<Env, 'PUBLIC_BASE_URL' | 'PORT'>, token: string): string {
  return `${publicBaseUrl(env)}/cards/${encodeURIComponent(token)}/barcode.png`
}

/**
 * The real LINE platform only loads HTTPS images (LINE-API.md §3) and rejects a Flex message
 * that holds another URL. Kizuna's stand-in (a sandbox run's, tests') takes any absolute URL.
 * Which one this is comes from how Kizuna started, not from LINE_API_BASE_URL: a proxy in front
 * of LINE has a host of its own.
 */
export function lineLoadsImageUrl(deps: Pick<Deps, 'lineStandIn'>, url: string): boolean {
  return url.startsWith('https://') || deps.lineStandIn
}
