import { HTTPFetchError } from '@line/bot-sdk'

export const channelSecret = 'sandbox-test-secret-0123456789ab'
export const channelAccessToken = 'sandbox-test-token'

/** A 1×1 PNG. */
export const pngBytes = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
)

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
