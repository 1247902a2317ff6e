import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { flexTemplateIdSchema, type MessageVars, messageVarsSchema } from './flex.schemas.ts'
import { flexTemplatesDir, readJsonFile } from './message-template.ts'
import { displayPath, TemplateError } from './template-error.ts'

export { flexTemplatesDir } from './message-template.ts'

/** Ids of every template in the folder (`<id>.json`, not the `.sample.json` files). */
export function listFlexTemplateIds(dir = flexTemplatesDir): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.endsWith('.sample.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort()
}

/** Reads `<dir>/<id>.sample.json`: example variables for previews, `flex validate` and tests. */
export function loadFlexSample(id: string, dir = flexTemplatesDir): MessageVars {
  const path = join(dir, `${flexTemplateIdSchema.parse(id)}.sample.json`)
  let raw: unknown
  try {
    raw = readJsonFile(path)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    throw new TemplateError(displayPath(path), { path: '', message }, { cause: error })
  }
  const parsed = messageVarsSchema.safeParse(raw)
  if (!parsed.success) {
    throw new TemplateError(displayPath(path), { path: '', message: 'must be a JSON object' })
  }
  return parsed.data
}
