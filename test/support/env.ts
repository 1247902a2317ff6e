/** Where the tests find real Postgres and Redis (the CI script starts both). */
export const TEST_DATABASE_URL = (() => {
  const url = process.env.TEST_DATABASE_URL
  if (!url) throw new Error('TEST_DATABASE_URL is set by test/support/global-setup.ts')
  return url
})()
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** LINE's official signature test vector (LINE-API.md §1.2). */
export const OFFICIAL_VECTOR = {
  body: '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}',
  secret: '8c570fa6dd201bb328f1c1eac23a96d8',
  signature: 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=',
}
