import { UnrecoverableError } from 'bullmq'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { Processor } from '../platform/worker-types.ts'
import { deployRichMenus, type RichMenuDeploySummary } from './richmenu-deploy.service.ts'
import type { RichMenuProblem } from './richmenu-files.ts'

export type DeployRichMenusJobOptions = {
  /** richmenus/ unless given (tests). */
  dir?: string
  /** Re-links people after a change (helper C's job). */
  afterChange?: (deps: Deps, summary: RichMenuDeploySummary) => Promise<void>
}

/**
 * `richmenu.deploy`, queued at every start: deploys richmenus/ after checking Kizuna's records
 * against LINE's list (a sandbox starts empty; a menu may have been deleted by hand). Problems in
 * the folders are logged (file, field, message: no personal data) and the job ends; a LINE 429
 * or refusal ends it too (the next start carries on); a 5xx or timeout is retried.
 */
export function createDeployRichMenus(
  opts: DeployRichMenusJobOptions = {},
): Processor<'richmenu.deploy'> {
  return {
    async run(deps) {
      const { afterChange } = opts
      try {
        const summary = await deployRichMenus(deps, {
          dir: opts.dir,
          checkLine: true,
          afterChange: afterChange && ((s) => afterChange(deps, s)),
        })
        deps.log.info(
          {
            created: summary.created.length,
            unchanged: summary.unchanged.length,
            retired: summary.retired.length,
            deleted: summary.deleted.length,
            waiting: summary.waiting.length,
          },
          'rich menus deployed',
        )
      } catch (error) {
        if (!(error instanceof AppError)) throw error
        if (error.code === 'UNPROCESSABLE') {
          for (const p of error.details as RichMenuProblem[]) {
            deps.log.warn({ file: p.file, field: p.field, problem: p.message }, 'rich menu problem')
          }
          deps.log.warn('rich menus not deployed: fix the problems above and restart')
          return
        }
        if (error.code === 'NOT_FOUND') {
          deps.log.info(error.message)
          return
        }
        deps.log.error({ err: error }, 'rich menu deploy stopped')
        throw new UnrecoverableError(error.message)
      }
    },
  }
}
