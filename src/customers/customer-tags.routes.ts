import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { pathPartOf } from '../platform/input.ts'
import { changeCustomerTags, getCustomerTags } from './customer-tag.service.ts'
import { parseTag, type TagUse } from './tag-values.ts'

/**
 * Admin tags API (scope admin), mounted under /api/customers. Each answers `{ customerId, tags }`
 * (the tags sorted, after the change); a merged id leads to the surviving customer:
 * `GET /:id/tags`; `PUT /:id/tags/:tag` adds the tag, `DELETE /:id/tags/:tag` removes it (both
 * idempotent; DELETE takes "．" for a "." stored before it was refused). A bad tag is 400 naming
 * `tag`; an erased customer 410; an unknown one 404; an id that is no uuid 400 naming `id`.
 */
export function customerTagRoutes(deps: Pick<Deps, 'db'>) {
  return new Hono<AppEnv>()
    .get('/:id/tags', requireKey(deps.db, 'admin'), async (c) => {
      return c.json(await getCustomerTags(deps.db, c.req.param('id')))
    })
    .put('/:id/tags/:tag', requireKey(deps.db, 'admin'), async (c) => {
      const tag = tagOfPath(c.req.url, 'add')
      return c.json(await changeCustomerTags(deps.db, c.req.param('id'), { add: [tag] }))
    })
    .delete('/:id/tags/:tag', requireKey(deps.db, 'admin'), async (c) => {
      const tag = tagOfPath(c.req.url, 'remove')
      return c.json(await changeCustomerTags(deps.db, c.req.param('id'), { remove: [tag] }))
    })
}

/**
 * The path's `:tag` (its last segment), decoded strictly (pathPartOf): Hono's param keeps a
 * segment that does not decode as it came (`%E0%A4%A`), which was then stored as the tag
 * `%e0%a4%a`.
 */
function tagOfPath(url: string, use: TagUse): string {
  return parseTag(pathPartOf(url, -1, 'tag'), 'tag', use)
}
