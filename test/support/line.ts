import { expect } from 'vitest'
import type { LinePlatform } from '../../src/sandbox/platform.ts'

/**
 * Every request Kizuna sent passed the stand-in's OpenAPI validation (400) and auth (401).
 * A 404 is LINE's answer to a profile lookup of a user this stand-in never saw: the sweeper
 * of a file's workers also fetches profiles for LINE users other test files created.
 */
export function expectNoRejectedRequests(line: LinePlatform): void {
  const rejected = line.requests.filter((r) => r.status === 400 || r.status === 401)
  expect(rejected.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.body)}`)).toEqual([])
}
