import { Hono } from 'hono'
import type { ValidationDetail } from './openapi-validator.ts'
import type { SandboxEnv } from './request-pipeline.ts'
import {
  firstMalformedUserId,
  invalidProperty,
  isFriend,
  type RichMenuState,
  randomHex,
  type SandboxContext,
  USER_ID,
} from './state.ts'

type MenuRequest = Record<string, unknown> & {
  size?: { width?: number; height?: number }
  areas?: {
    bounds?: { x?: number; y?: number; width?: number; height?: number }
    action?: unknown
  }[]
}

const MAX_MENUS = 1000
const MAX_ALIASES = 1000
const NOT_FOUND = { message: 'Not found' }
const NO_IMAGE = { message: 'must upload richmenu image before applying it to user' }
const INVALID_USER_ID = { message: "The value for the 'userId' parameter is invalid" }

/** LINE's refusal of a bulk call naming a malformed user id (the first), or undefined. */
function malformedUserId(userIds: string[]): { message: string } | undefined {
  const bad = firstMalformedUserId(userIds)
  return bad < 0 ? undefined : invalidProperty(`'userIds[${bad}]'`)
}

/** Rich menus, defaults, per-user links and aliases (api host). Images live on the data host. */
export function createRichMenuRoutes(ctx: SandboxContext) {
  const app = new Hono<SandboxEnv>()
  const { state } = ctx
  const menu = (id: string | undefined) => (id ? state.richMenus.get(id) : undefined)
  const linkIfFriend = (userId: string, richMenuId: string) => {
    const user = state.users.get(userId)
    if (user && isFriend(ctx, userId)) user.richMenuId = richMenuId
  }

  app.post('/v2/bot/richmenu', (c) => {
    const req = c.get('body') as MenuRequest
    const details = richMenuProblems(req)
    if (details.length > 0) {
      return c.json({ message: `The request body has ${details.length} error(s)`, details }, 400)
    }
    if (state.richMenus.size >= MAX_MENUS) {
      return c.json({ message: 'The number of rich menus has reached the limit' }, 400)
    }
    const richMenuId = `richmenu-${randomHex(16)}`
    state.richMenus.set(richMenuId, { richMenuId, request: req })
    return c.json({ richMenuId })
  })

  app.post('/v2/bot/richmenu/validate', (c) => {
    const details = richMenuProblems(c.get('body') as MenuRequest)
    if (details.length === 0) return c.json({})
    return c.json({ message: `The request body has ${details.length} error(s)`, details }, 400)
  })

  app.get('/v2/bot/richmenu/list', (c) =>
    c.json({ richmenus: [...state.richMenus.values()].map(toResponse) }),
  )

  // A malformed id refuses the whole call: no one is linked, as a bulk unlink (below).
  app.post('/v2/bot/richmenu/bulk/link', (c) => {
    const { richMenuId, userIds } = c.get('body') as { richMenuId: string; userIds: string[] }
    const malformed = malformedUserId(userIds)
    if (malformed) return c.json(malformed, 400)
    const target = menu(richMenuId)
    if (!target) return c.json(NOT_FOUND, 404)
    if (!target.image) return c.json(NO_IMAGE, 400)
    // 202 is no promise (LINE-API.md §4): a user scripted to be missed is left as they were.
    for (const userId of userIds) {
      if (!state.bulkLinkMisses.delete(userId)) linkIfFriend(userId, richMenuId)
    }
    return c.json({}, 202)
  })

  // A malformed id refuses the whole call: no one is unlinked (LINE's reference, "Unlink rich
  // menus from multiple users"). One that is well formed but unknown is accepted and ignored.
  app.post('/v2/bot/richmenu/bulk/unlink', (c) => {
    const { userIds } = c.get('body') as { userIds: string[] }
    const malformed = malformedUserId(userIds)
    if (malformed) return c.json(malformed, 400)
    for (const userId of userIds) {
      const user = state.users.get(userId)
      if (user) delete user.richMenuId
    }
    return c.json({}, 202)
  })

  app.post('/v2/bot/richmenu/alias', (c) => {
    const { richMenuAliasId, richMenuId } = c.get('body') as Record<string, string>
    if (state.aliases.has(richMenuAliasId ?? '')) {
      return c.json({ message: 'conflict richmenu alias id' }, 400)
    }
    const problem = aliasTargetProblem(menu(richMenuId))
    if (problem) return c.json(problem, 400)
    if (state.aliases.size >= MAX_ALIASES) {
      return c.json({ message: 'The number of rich menu aliases has reached the limit' }, 400)
    }
    state.aliases.set(richMenuAliasId ?? '', richMenuId ?? '')
    return c.json({})
  })

  app.get('/v2/bot/richmenu/alias/list', (c) =>
    c.json({
      aliases: [...state.aliases].map(([richMenuAliasId, richMenuId]) => ({
        richMenuAliasId,
        richMenuId,
      })),
    }),
  )

  app.get('/v2/bot/richmenu/alias/:aliasId', (c) => {
    const richMenuId = state.aliases.get(c.req.param('aliasId'))
    if (!richMenuId) return c.json(NOT_FOUND, 404)
    return c.json({ richMenuAliasId: c.req.param('aliasId'), richMenuId })
  })

  app.post('/v2/bot/richmenu/alias/:aliasId', (c) => {
    const aliasId = c.req.param('aliasId')
    if (!state.aliases.has(aliasId)) return c.json(NOT_FOUND, 404)
    const { richMenuId } = c.get('body') as { richMenuId: string }
    const problem = aliasTargetProblem(menu(richMenuId))
    if (problem) return c.json(problem, 400)
    state.aliases.set(aliasId, richMenuId)
    return c.json({})
  })

  app.delete('/v2/bot/richmenu/alias/:aliasId', (c) => {
    if (!state.aliases.delete(c.req.param('aliasId'))) return c.json(NOT_FOUND, 404)
    return c.json({})
  })

  app.get('/v2/bot/richmenu/:richMenuId', (c) => {
    const found = menu(c.req.param('richMenuId'))
    return found ? c.json(toResponse(found)) : c.json(NOT_FOUND, 404)
  })

  app.delete('/v2/bot/richmenu/:richMenuId', (c) => {
    const richMenuId = c.req.param('richMenuId')
    if (!state.richMenus.delete(richMenuId)) return c.json(NOT_FOUND, 404)
    if (state.defaultRichMenuId === richMenuId) state.defaultRichMenuId = undefined
    for (const user of state.users.values()) {
      if (user.richMenuId === richMenuId) delete user.richMenuId
    }
    for (const [alias, target] of state.aliases) {
      if (target === richMenuId) state.aliases.delete(alias)
    }
    return c.json({})
  })

  app.get('/v2/bot/user/all/richmenu', (c) => {
    const richMenuId = state.defaultRichMenuId
    return richMenuId ? c.json({ richMenuId }) : c.json({ message: 'no default richmenu' }, 404)
  })

  app.post('/v2/bot/user/all/richmenu/:richMenuId', (c) => {
    const target = menu(c.req.param('richMenuId'))
    if (!target) return c.json(NOT_FOUND, 404)
    if (!target.image) return c.json(NO_IMAGE, 400)
    state.defaultRichMenuId = target.richMenuId
    return c.json({})
  })

  app.delete('/v2/bot/user/all/richmenu', (c) => {
    state.defaultRichMenuId = undefined
    return c.json({})
  })

  app.get('/v2/bot/user/:userId/richmenu', (c) => {
    const richMenuId = state.users.get(c.req.param('userId'))?.richMenuId
    return richMenuId
      ? c.json({ richMenuId })
      : c.json({ message: 'the user has no richmenu' }, 404)
  })

  app.delete('/v2/bot/user/:userId/richmenu', (c) => {
    if (!USER_ID.test(c.req.param('userId'))) return c.json(INVALID_USER_ID, 400)
    const user = state.users.get(c.req.param('userId'))
    if (user) delete user.richMenuId
    return c.json({})
  })

  // 200 even for non-friends and blocked users, who simply don't get linked (LINE-API.md §4);
  // 400 for a malformed id, as the unlink.
  app.post('/v2/bot/user/:userId/richmenu/:richMenuId', (c) => {
    if (!USER_ID.test(c.req.param('userId'))) return c.json(INVALID_USER_ID, 400)
    const target = menu(c.req.param('richMenuId'))
    if (!target) return c.json(NOT_FOUND, 404)
    if (!target.image) return c.json(NO_IMAGE, 400)
    linkIfFriend(c.req.param('userId'), target.richMenuId)
    return c.json({})
  })

  return app
}

function toResponse(menu: RichMenuState) {
  return { richMenuId: menu.richMenuId, ...menu.request }
}

function aliasTargetProblem(target: RichMenuState | undefined) {
  if (!target) return { message: 'richmenu not found' }
  if (!target.image) return { message: 'must upload richmenu image before creating alias' }
  return undefined
}

/** What LINE checks beyond the spec (which marks no rich menu field required). */
export function richMenuProblems(req: MenuRequest): ValidationDetail[] {
  const details: ValidationDetail[] = []
  for (const field of ['size', 'selected', 'name', 'chatBarText', 'areas']) {
    if (req[field] === undefined) details.push({ message: 'must be specified', property: field })
  }
  const { width = 0, height = 0 } = req.size ?? {}
  if (req.size && (width < 800 || width > 2500)) {
    details.push({ message: 'must be between 800 and 2500', property: 'size.width' })
  }
  if (req.size && height < 250)
    details.push({ message: 'must be 250 or more', property: 'size.height' })
  // LINE-API.md §4: width / height at least 1.45, as for the image.
  if (req.size && height > 0 && width / height < 1.45) {
    details.push({ message: 'width / height must be 1.45 or more', property: 'size' })
  }
  const areas = req.areas ?? []
  if (areas.length > 20)
    details.push({ message: 'Size must be between 0 and 20', property: 'areas' })
  areas.forEach((area, i) => {
    if (!area.action) details.push({ message: 'must be specified', property: `areas[${i}].action` })
    const b = area.bounds
    if (!b) details.push({ message: 'must be specified', property: `areas[${i}].bounds` })
    else if ((b.x ?? 0) + (b.width ?? 0) > width || (b.y ?? 0) + (b.height ?? 0) > height) {
      details.push({ message: 'must be within the rich menu size', property: `areas[${i}].bounds` })
    }
  })
  return details
}
