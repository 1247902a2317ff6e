import { expect } from 'vitest'
import type { LinePlatform } from '../../src/sandbox/platform.ts'

/**
 * Every request Kizuna sent passed the stand-in's OpenAPI validation (400) and auth (401).
 * A 404 is LINE's answer to a profile lookup of a user this stand-in never saw: the sweeper
 * of a file's workers also fetches profiles for LINE users other test files created.
 */
export function expectNoRejectedRequests(
  line: LinePlatform,
  opts: { exceptRichMenus?: boolean } = {},
): void {
  // exceptRichMenus: a file's rich-menu link jobs link its friends against the menus the shared
  // test database holds live, which its fresh stand-in may not know (400/404 by design,
  // richmenu-link-refused-menu.test.ts); for files whose subject is not rich menus.
  const rejected = line.requests.filter(
    (r) =>
      (r.status === 400 || r.status === 401) &&
      !(opts.exceptRichMenus && r.path.includes('/richmenu')),
  )
  expect(rejected.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.body)}`)).toEqual([])
}
