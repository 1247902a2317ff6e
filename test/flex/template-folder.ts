import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { tempFiles } from '../support/files.ts'

export type TemplateFixture = { template: unknown; sample?: unknown; rawTemplate?: string }

/** A throw-away templates folder holding `<id>.json` (+ `<id>.sample.json`) per entry. */
export async function templateFolder(entries: Record<string, TemplateFixture>): Promise<string> {
  const write = await tempFiles('flex')
  const dir = dirname(await write('txt', ['message templates for a test']))
  for (const [id, { template, sample, rawTemplate }] of Object.entries(entries)) {
    writeFileSync(join(dir, `${id}.json`), rawTemplate ?? JSON.stringify(template, null, 2))
    if (sample !== undefined) writeFileSync(join(dir, `${id}.sample.json`), JSON.stringify(sample))
  }
  return dir
}

/** A small valid template: a bubble whose body holds `body`, with string vars `props`. */
export function bubbleTemplate(opts: {
  body: unknown[]
  properties?: Record<string, unknown>
  required?: string[]
  footer?: unknown
  email?: { subject?: string; html?: string | string[]; text?: string | string[] }
}) {
  return {
    description: 'a test template',
    category: 'transactional',
    variables: {
      type: 'object',
      required: opts.required ?? [],
      properties: opts.properties ?? {},
    },
    line: {
      altText: 'Test message',
      contents: {
        type: 'bubble',
        body: { type: 'box', layout: 'vertical', contents: opts.body },
        ...(opts.footer ? { footer: opts.footer } : {}),
      },
    },
    email: {
      subject: opts.email?.subject ?? 'Test subject',
      html: opts.email?.html ?? '<p>Test</p>',
      text: opts.email?.text ?? 'Test',
    },
  }
}

export const text = (value: string) => ({ type: 'text', text: value, wrap: true })
