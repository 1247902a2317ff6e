import { join } from 'node:path'
import {
  loadOpenApiValidator,
  messagingApiSpecPath,
  type ValidationDetail,
} from '../sandbox/openapi-validator.ts'
import { shrunkVars, smallestVars } from './flex-smallest-case.ts'
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
 * sample, again with the largest variables the schema allows (flex-worst-case.ts: widest in
 * JSON bytes, then in UTF-16 units), whose arrays and strings must therefore be bounded
 * (maxItems, maxLength or a pattern), and with the smallest (flex-smallest-case.ts: each var of
 * the sample shrunk to nothing in turn, then all at their smallest), which finds an empty text,
 * an empty carousel or a placeholder of an absent var, naming the var.
 */
export function validateTemplate(id: string, dir: string): TemplateReport {
  const fallback = displayPath(join(dir, `${id}.json`))
  try {
    const { file, variables, validateVars } = loadMessageTemplate(id, dir)
    const sample = loadFlexSample(id, dir)
    const problems = checkRendered(id, sample, dir)
    // One finding per path: the sample's first, then those only other variables show.
    const found = new Set(problems.map((p) => p.path))
    const rendered = new Set<string>()
    /** Renders derived `vars` unless rendered already; its new problems, `when` said. */
    const also = (vars: Record<string, unknown>, when: string, more: TemplateProblem[] = []) => {
      const key = JSON.stringify(vars)
      if (rendered.has(key)) return
      rendered.add(key)
      for (const p of [...more, ...checkRendered(id, vars, dir, true)]) {
        if (found.has(p.path)) continue
        found.add(p.path)
        problems.push(p.path.startsWith('vars') ? p : { ...p, message: `${p.message} (${when})` })
      }
    }
    // Real variables can be larger than the sample: render the largest the schema allows too,
    // widest in bytes and widest in UTF-16 units (the same variables when nothing differs).
    for (const widest of WIDEST) {
      const worst = worstCaseVars(variables, sample, widest)
      also(worst.vars, 'with the largest variables the schema allows', worst.problems)
    }
    // And smaller: each var of the sample shrunk to nothing the schema allows (absent, "",
    // empty, false, 0), naming it, then all of them at their smallest at once.
    for (const shrunk of shrunkVars(variables, sample)) {
      // One the schema refuses (a constraint between vars) is not real data.
      if (validateVars(shrunk.vars)) also(shrunk.vars, `when ${shrunk.path} ${shrunk.what}`)
    }
    const least = smallestVars(variables, sample)
    also(least.vars, 'with the smallest variables the schema allows', least.problems)
    return { id, file, problems }
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
