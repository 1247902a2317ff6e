import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { messagingApi } from '@line/bot-sdk'
import { flexTemplateIdSchema, type MessageVars, messageVarsSchema } from './flex.schemas.ts'
import { flexTemplatesDir, renderMessage } from './message-template.ts'
import { displayPath, TemplateError } from './template-error.ts'

export { flexTemplatesDir } from './message-template.ts'

export type RenderedFlex = { altText: string; contents: messagingApi.FlexContainer }

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
    raw = JSON.parse(readFileSync(path, 'utf8'))
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

/**
 * The LINE version of a message template (`renderMessage(id, vars).line` without `type`).
 * Images may be http:// here: this caller (cards.service.ts) drops an image that the real
 * LINE would not load, and the local LINE stand-in loads http images.
 */
export function renderFlexTemplate(id: string, vars: Record<string, unknown>): RenderedFlex {
  const { altText, contents } = renderMessage(id, vars, { allowHttpImages: true }).line
  return { altText, contents }
}
