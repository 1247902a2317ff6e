import type { Processor } from '../platform/worker-types.ts'
import { linkRichMenus, relinkRichMenus } from './richmenu-link.service.ts'

/** Links the menus of up to 500 LINE users (follow, account link, purchase). */
export const linkUsers: Processor<'richmenu.link-users'> = {
  async run(deps, { lineUserIds }) {
    await linkRichMenus(deps, lineUserIds)
  },
}

/** Links every friend whose menu differs from their segment's (deploy, bulk changes). */
export const relink: Processor<'richmenu.relink'> = {
  async run(deps) {
    const counts = await relinkRichMenus(deps)
    deps.log.info(counts, 'relinked rich menus')
  },
}
