import { UnrecoverableError } from 'bullmq'
import { jobIds } from '../jobs.ts'
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
 * the folders are logged (file, field, message: no personal data) and the job ends; so does a
 * folder missing or with no menus (a bind mount left empty), with a warning: it never removes
 * every menu (only `kizuna richmenu deploy --remove-all` does); a refusal ends it too (the next
 * start carries on); a 5xx or timeout is retried. LINE's hourly limits
 * (a 429, or Kizuna's own budget used up) queue the deploy again for when there is room.
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
          deps.log.warn(error.message)
          return
        }
        if (error.code === 'TOO_MANY_REQUESTS') {
          await resumeLater(deps, error)
          return
        }
        deps.log.error({ err: error }, 'rich menu deploy stopped')
        throw new UnrecoverableError(error.message)
      }
    },
  }
}

/** After LINE's own 429 the hour's room is unknown: the deploy tries again this much later. */
export const RESUME_AFTER_LINE_429_MS = 15 * 60_000

/** Queues the stopped deploy again for when LINE's hourly limit has room (the steps done stay). */
async function resumeLater(deps: Deps, error: AppError): Promise<void> {
  const known = (error.details as { retryInMs?: number | null } | null)?.retryInMs
  const delay = known ?? RESUME_AFTER_LINE_429_MS
  const at = deps.clock.now().getTime() + delay
  await deps.queues.enqueue(
    'richmenu.deploy',
    {},
    { jobId: jobIds.richmenuDeploy(`resume-${at}`), delay },
  )
  deps.log.warn(
    { resumeAt: new Date(at).toISOString() },
    `rich menu deploy paused: ${error.message}`,
  )
}
