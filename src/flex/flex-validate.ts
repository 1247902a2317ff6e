import { join } from 'node:path'
import {
  loadOpenApiValidator,
  messagingApiSpecPath,
  type ValidationDetail,
} from '../sandbox/openapi-validator.ts'
import { loadMessageTemplate, renderMessageDraft } from './message-template.ts'
import { listFlexTemplateIds, loadFlexSample } from './render.ts'
import { displayPath, TemplateError, type TemplateProblem } from './template-error.ts'

export type TemplateReport = { id: string; file: string; problems: TemplateProblem[] }

const SAMPLE_USER = `U${'0123456789abcdef'.repeat(2)}`

/**
 * Checks one template as `kizuna flex validate` does: the file loads and compiles, its sample
 * fits `variables`, the LINE version keeps LINE's limits and its push body passes LINE's
 * OpenAPI schema, and the email version renders a subject, HTML and text.
 */
export function validateTemplate(id: string, dir: string): TemplateReport {
  const fallback = displayPath(join(dir, `${id}.json`))
  try {
    const { file } = loadMessageTemplate(id, dir)
    const { message, problems } = renderMessageDraft(id, loadFlexSample(id, dir), { dir })
    const body = { to: SAMPLE_USER, messages: [message.line] }
    const details = pushValidator()(body)
    // The schema restates some of the limits checked above: one finding per field.
    const schemaProblems = details
      .map((d) => ({
        path: d.property.replace(/^messages\[0\]/, 'line'),
        message: `${d.message} (LINE's schema)`,
      }))
      .filter((d) => !problems.some((p) => p.path === d.path))
    return { id, file, problems: [...problems, ...schemaProblems] }
  } catch (error) {
    if (!(error instanceof TemplateError)) {
      const message = error instanceof Error ? error.message : String(error)
      return { id, file: fallback, problems: [{ path: '', message }] }
    }
    const problems = error.problems.map((p) => ({ ...p }))
    const other = error.file === fallback ? [] : [{ path: '', message: `in ${error.file}` }]
    return { id, file: fallback, problems: [...other, ...problems] }
  }
}

/** Every template in the folder, in id order. */
export function validateTemplateFolder(dir: string): TemplateReport[] {
  return listFlexTemplateIds(dir).map((id) => validateTemplate(id, dir))
}

/** `file: path message; path message`, as one line. */
export function describeProblems(report: TemplateReport): string {
  const text = report.problems
    .map((p) => (p.path ? `${p.path} ${p.message}` : p.message))
    .join('; ')
  return `${report.file}: ${text}`
}

let validatePush: ((body: unknown) => ValidationDetail[]) | undefined

/** Validates a push request body against LINE's messaging-api.yml (loaded once). */
function pushValidator(): (body: unknown) => ValidationDetail[] {
  if (!validatePush) {
    const api = loadOpenApiValidator(messagingApiSpecPath)
    const push = api.findOperation('POST', '/v2/bot/message/push')
    if (!push) throw new Error('the vendored messaging-api.yml has no push operation')
    validatePush = (body) => api.validateBody(push.op, body)
  }
  return validatePush
}
