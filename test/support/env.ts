/** Where the tests find real Postgres and Redis (the CI script starts both). */
export const TEST_DATABASE_URL = (() => {
  const url = process.env.TEST_DATABASE_URL
  if (!url) throw new Error('TEST_DATABASE_URL is set by test/support/global-setup.ts')
  return url
})()
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export { OFFICIAL_VECTOR } from './official-vector.ts'
