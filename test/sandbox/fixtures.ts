import { HTTPFetchError } from '@line/bot-sdk'
import { createCanvas } from '@napi-rs/canvas'
import { expect } from 'vitest'
import type { SandboxPlatform } from '../../src/sandbox/platform.ts'

export const channelSecret = 'sandbox-test-secret-0123456789ab'
export const channelAccessToken = 'sandbox-test-token'

/** A link token the platform issued for the user, as Kizuna would get it. */
export async function issueLinkToken(platform: SandboxPlatform, userId: string): Promise<string> {
  const res = await platform.apiApp.request(`/v2/bot/user/${userId}/linkToken`, {
    method: 'POST',
    headers: { authorization: `Bearer ${channelAccessToken}` },
  })
  expect(res.status).toBe(200)
  return ((await res.json()) as { linkToken: string }).linkToken
}

/** A flat image of the given size, as a rich menu image (PNG unless told). */
export function imageBytes(width: number, height: number, type: 'png' | 'jpeg' = 'png'): Buffer {
  const canvas = createCanvas(width, height)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#06c755'
  ctx.fillRect(0, 0, width, height)
  return type === 'png' ? canvas.toBuffer('image/png') : canvas.toBuffer('image/jpeg')
}

/** A 2500×843 PNG: a rich menu image LINE takes. */
export const pngBytes = imageBytes(2500, 843)

export const richMenuRequest = {
  size: { width: 2500, height: 843 },
  selected: false,
  name: 'main',
  chatBarText: 'Menu',
  areas: [
    {
      bounds: { x: 0, y: 0, width: 1250, height: 843 },
      action: { type: 'postback' as const, data: 'action=points' },
    },
  ],
}

/** Creates a rich menu through the stand-in's API (validated as LINE does) and uploads its image. */
export async function createRichMenu(platform: SandboxPlatform, request: unknown): Promise<string> {
  const auth = { authorization: `Bearer ${channelAccessToken}` }
  const res = await platform.apiApp.request('/v2/bot/richmenu', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(request),
  })
  expect(res.status).toBe(200)
  const { richMenuId } = (await res.json()) as { richMenuId: string }
  const upload = await platform.dataApp.request(`/v2/bot/richmenu/${richMenuId}/content`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'image/png' },
    body: pngBytes,
  })
  expect(upload.status).toBe(200)
  return richMenuId
}

/** Runs a call that must fail with an HTTPFetchError and returns it (body parsed). */
export async function fetchError(call: Promise<unknown>) {
  const error = await call.then(
    () => {
      throw new Error('expected the LINE call to fail')
    },
    (e: unknown) => e,
  )
  if (!(error instanceof HTTPFetchError)) throw error
  return { status: error.status, headers: error.headers, body: JSON.parse(error.body) }
}
