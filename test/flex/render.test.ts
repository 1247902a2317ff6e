import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  listFlexTemplateIds,
  loadFlexSample,
  loadFlexTemplate,
  renderFlexTemplate,
} from '../../src/flex/render.ts'
import { loadOpenApiValidator, messagingApiSpecPath } from '../../src/sandbox/openapi-validator.ts'

const api = loadOpenApiValidator(messagingApiSpecPath)
const push = api.findOperation('POST', '/v2/bot/message/push')!.op

describe('flex-templates/', () => {
  const ids = listFlexTemplateIds()

  it('holds the member card', () => {
    expect(ids).toContain('member-card')
  })

  for (const id of ids) {
    it(`${id} renders with its sample into a message LINE's schema accepts`, () => {
      const { altText, contents } = renderFlexTemplate(id, loadFlexSample(id))
      expect(JSON.stringify({ altText, contents })).not.toMatch(/\{\{/)
      const body = {
        to: 'U0123456789abcdef0123456789abcdef',
        messages: [{ type: 'flex', altText, contents }],
      }
      expect(api.validateBody(push, body)).toEqual([])
    })
  }
})

describe('renderFlexTemplate', () => {
  const sample = loadFlexSample('member-card')

  it('keeps values as string content, whatever characters they hold', () => {
    const nasty = '"},{"type":"sparkle","x":"\\ {{cardNumber}} </script>'
    const { altText, contents } = renderFlexTemplate('member-card', {
      ...sample,
      displayName: nasty,
    })
    expect(altText).toContain(nasty)
    const header = (contents as { header: { contents: { text: string }[] } }).header
    expect(header.contents[1]?.text).toBe(nasty)
    const body = {
      to: 'U0123456789abcdef0123456789abcdef',
      messages: [{ type: 'flex', altText, contents }],
    }
    expect(api.validateBody(push, body)).toEqual([])
  })

  it('names a missing variable', () => {
    const { couponCode: _, ...rest } = sample
    expect(() => renderFlexTemplate('member-card', rest)).toThrow(/no value for \{\{couponCode\}\}/)
  })

  it('refuses ids that are not plain file names', () => {
    expect(() => loadFlexTemplate('../package')).toThrow(/kebab-case/)
  })

  it('rejects a template file of the wrong shape, naming the problem', () => {
    const dir = `${mkdtempSync(join(tmpdir(), 'flex-'))}/`
    writeFileSync(join(dir, 'broken.json'), JSON.stringify({ contents: { type: 'bubble' } }))
    writeFileSync(join(dir, 'notjson.json'), '{ "altText": ')
    expect(() => loadFlexTemplate('broken', dir)).toThrow(/altText/)
    expect(() => loadFlexTemplate('notjson', dir)).toThrow(/notjson\.json/)
  })
})
