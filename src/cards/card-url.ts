import type { Env } from '../config/env.ts'

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
 * that holds another URL. The local stand-in (sandbox, tests) takes any absolute URL.
 */
export function lineLoadsImageUrl(env: Pick<Env, 'LINE_API_BASE_URL'>, url: string): boolean {
  if (url.startsWith('https://')) return true
  return new URL(env.LINE_API_BASE_URL).hostname !== 'api.line.me'
}
