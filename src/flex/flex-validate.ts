import { join } from 'node:path'
import {
  loadOpenApiValidator,
  messagingApiSpecPath,
  type ValidationDetail,
} from '../sandbox/openapi-validator.ts'
import { WIDEST, worstCaseVars } from './flex-worst-case.ts'
import { loadMessageTemplate, renderMessageDraft } from './message-template.ts'
import { listFlexTemplateIds, loadFlexSample } from './render.ts'
import { displayPath, TemplateError, type TemplateProblem } from './template-error.ts'

export type TemplateReport = { id: string; file: string; problems: TemplateProblem[] }

const SAMPLE_USER = `U${'0123456789abcdef'.repeat(2)}`

/**
 * Checks one template as `kizuna flex validate` does: the file loads and compiles, its sample
 * fits `variables`, the LINE version keeps LINE's limits and its push body passes LINE's
 * OpenAPI schema, and the email version renders a subject, HTML and text; all that with the
 * sample and again with the largest variables the schema allows (flex-worst-case.ts: widest in
 * JSON bytes, then in UTF-16 units), whose arrays and strings must therefore be bounded
 * (maxItems, maxLength or a pattern).
 */
export function validateTemplate(id: string, dir: string): TemplateReport {
  const fallback = displayPath(join(dir, `${id}.json`))
  try {
    const { file, variables } = loadMessageTemplate(id, dir)
    const sample = loadFlexSample(id, dir)
    const problems = checkRendered(id, sample, dir)
    // Real variables can be larger than the sample: render the largest the schema allows too,
    // widest in bytes and widest in UTF-16 units (the same variables when nothing differs).
    const found = new Set(problems.map((p) => p.path))
    const rendered = new Set<string>()
    const worstProblems: TemplateProblem[] = []
    for (const widest of WIDEST) {
      const worst = worstCaseVars(variables, sample, widest)
      const key = JSON.stringify(worst.vars)
      if (rendered.has(key)) continue
      rendered.add(key)
      const more = [...worst.problems, ...checkRendered(id, worst.vars, dir, true)]
        .filter((p) => !found.has(p.path) && found.add(p.path))
        .map((p) =>
          p.path.startsWith('vars')
            ? p
            : { ...p, message: `${p.message} (with the largest variables the schema allows)` },
        )
      worstProblems.push(...more)
    }
    return { id, file, problems: [...problems, ...worstProblems] }
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

/** LINE's limits and its OpenAPI schema, on the template rendered with `vars`. */
function checkRendered(
  id: string,
  vars: Record<string, unknown>,
  dir: string,
  derived = false,
): TemplateProblem[] {
  let rendered: ReturnType<typeof renderMessageDraft>
  try {
    rendered = renderMessageDraft(id, vars, { dir })
  } catch (error) {
    // Variables derived from the schema that the schema refuses (constraints it can't meet).
    if (derived && error instanceof TemplateError) return error.problems
    throw error
  }
  const { message, problems } = rendered
  const body = { to: SAMPLE_USER, messages: [message.line] }
  // The schema restates some of the limits checked above: one finding per field.
  const schemaProblems = pushValidator()(body)
    .map((d) => ({
      path: d.property.replace(/^messages\[0\]/, 'line'),
      message: `${d.message} (LINE's schema)`,
    }))
    .filter((d) => !problems.some((p) => p.path === d.path))
  return [...problems, ...schemaProblems]
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
