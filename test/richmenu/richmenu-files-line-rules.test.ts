import { describe, expect, it } from 'vitest'
import { loadRichMenus } from '../../src/richmenu/richmenu-files.ts'
import { area, expectProblem, menuFolder, menuJson } from './menu-folder.ts'

// LINE's rules on a menu.json, as loadRichMenus checks them before anything reaches LINE. A valid
// folder, Kizuna's own rules, the image and the shipped menus: richmenu-files.test.ts.

const withAction = (action: Record<string, unknown>) =>
  menuJson({}, { areas: [area(0, 800, action)] })

describe("loadRichMenus: LINE's rules on the menu", () => {
  it.each([
    [{ width: 799, height: 400 }, 'richMenu.size.width', /from 800 to 2500/],
    [{ width: 2501, height: 843 }, 'richMenu.size.width', /from 800 to 2500/],
    [{ width: 800, height: 249 }, 'richMenu.size.height', /at least 250/],
    [{ width: 800, height: 552 }, 'richMenu.size', /1\.45.*551 or less/],
    [{ width: 800.5, height: 400 }, 'richMenu.size.width', /whole number/],
  ])('refuses size %j', (size, field, message) => {
    expectProblem(menuJson({}, { size }), field, message)
  })

  it('refuses missing, non-boolean and too-long top-level fields', () => {
    const { chatBarText: _, ...noBar } = menuJson().richMenu
    expectProblem({ ...menuJson(), richMenu: noBar }, 'richMenu.chatBarText', /missing/)
    expectProblem(menuJson({}, { selected: 'yes' }), 'richMenu.selected', /true .* or false/)
    expectProblem(menuJson({}, { name: 'x'.repeat(301) }), 'richMenu.name', /at most 300/)
    expectProblem(
      menuJson({}, { chatBarText: 'Open the menu!!' }),
      'richMenu.chatBarText',
      /at most 14 characters \(is 15\)/,
    )
    expectProblem(menuJson({}, { colour: 'red' }), 'richMenu.colour', /not a key LINE knows/)
  })

  it('refuses no areas and more than 20', () => {
    expectProblem(menuJson({}, { areas: [] }), 'richMenu.areas', /1 to 20 areas/)
    const many = Array.from({ length: 21 }, (_, i) =>
      area(i * 38, 38, { type: 'postback', data: `n=${i}` }),
    )
    expectProblem(menuJson({}, { areas: many }), 'richMenu.areas', /1 to 20 areas/)
  })

  it('refuses bounds that are negative, empty or outside the image', () => {
    const at = (bounds: Record<string, number>) =>
      menuJson({}, { areas: [{ bounds, action: { type: 'postback', data: 'x' } }] })
    expectProblem(
      at({ x: -1, y: 0, width: 10, height: 10 }),
      'richMenu.areas[0].bounds.x',
      /0 or more/,
    )
    expectProblem(
      at({ x: 0, y: 0, width: 0, height: 10 }),
      'richMenu.areas[0].bounds.width',
      /1 or more/,
    )
    expectProblem(
      at({ x: 0, y: 0, width: 10, height: 10, z: 1 }),
      'richMenu.areas[0].bounds.z',
      /not a key/,
    )
    expectProblem(
      at({ x: 700, y: 0, width: 101, height: 10 }),
      'richMenu.areas[0].bounds',
      /x=801, past the image's width 800/,
    )
    expectProblem(
      at({ x: 0, y: 300, width: 10, height: 101 }),
      'richMenu.areas[0].bounds',
      /y=401, past the image's height 400/,
    )
    expectProblem(
      menuJson({}, { areas: [{ bounds: { x: 0, y: 0, width: 1, height: 1 } }] }),
      'richMenu.areas[0].action',
      /missing/,
    )
  })

  it('refuses actions LINE does not take in rich menus, and missing keys', () => {
    const a = 'richMenu.areas[0].action'
    expectProblem(
      withAction({ type: 'camera', label: 'Photo' }),
      `${a}.type`,
      /one of postback, .*richmenuswitch/,
    )
    expectProblem(withAction({ type: 'location' }), `${a}.type`, /one of/)
    expectProblem(
      withAction({ type: 'postback', label: 'x' }),
      `${a}.data`,
      /missing; a postback action needs it/,
    )
    expectProblem(withAction({ type: 'message' }), `${a}.text`, /missing/)
    expectProblem(withAction({ type: 'uri' }), `${a}.uri`, /missing/)
    expectProblem(withAction({ type: 'datetimepicker', data: 'd' }), `${a}.mode`, /missing/)
    expectProblem(
      withAction({ type: 'richmenuswitch', data: 'd' }),
      `${a}.richMenuAliasId`,
      /missing/,
    )
    expectProblem(
      withAction({ type: 'richmenuswitch', richMenuAliasId: 'm' }),
      `${a}.data`,
      /missing/,
    )
    expectProblem(
      withAction({ type: 'richmenuswitch', richMenuAliasId: 'Bad Alias', data: 'd' }),
      `${a}.richMenuAliasId`,
      /a-z, 0-9/,
    )
  })

  it('refuses a misspelt key in an action (LINE would drop it silently)', () => {
    const a = 'richMenu.areas[0].action'
    expectProblem(
      withAction({ type: 'postback', labl: 'Help', data: 'action=help' }),
      `${a}.labl`,
      /not a key LINE knows here; use type, label, data, displayText/,
    )
    expectProblem(
      withAction({ type: 'postback', label: 'Help', data: 'action=help', displaytext: 'Help' }),
      `${a}.displaytext`,
      /not a key/,
    )
    expectProblem(
      withAction({ type: 'uri', label: 'Shop', uri: 'https://example.com/', data: 'x' }),
      `${a}.data`,
      /use type, label, uri, altUri/,
    )
    // Every key LINE documents for an action is taken.
    const { dir, add } = menuFolder()
    add(
      'm',
      menuJson(
        {},
        {
          areas: [
            area(0, 400, {
              type: 'postback',
              label: 'a',
              data: 'd',
              displayText: 't',
              inputOption: 'openKeyboard',
              fillInText: 'f',
            }),
            area(400, 400, {
              type: 'datetimepicker',
              label: 'b',
              data: 'd',
              mode: 'date',
              initial: '2026-01-01',
              max: '2027-01-01',
              min: '2025-01-01',
            }),
          ],
        },
      ),
    )
    expect(loadRichMenus(dir).problems).toEqual([])
  })

  it("refuses each action's limits", () => {
    const a = 'richMenu.areas[0].action'
    const long = (n: number) => 'x'.repeat(n)
    expectProblem(
      withAction({ type: 'postback', data: 'd', label: long(21) }),
      `${a}.label`,
      /at most 20 characters \(is 21\)/,
    )
    expectProblem(withAction({ type: 'postback', data: long(301) }), `${a}.data`, /at most 300/)
    expectProblem(
      withAction({ type: 'postback', data: 'd', displayText: long(301) }),
      `${a}.displayText`,
      /at most 300/,
    )
    expectProblem(withAction({ type: 'message', text: long(301) }), `${a}.text`, /at most 300/)
    expectProblem(
      withAction({ type: 'uri', uri: 'ftp://example.com/x' }),
      `${a}.uri`,
      /must use http: https: line: tel:/,
    )
    expectProblem(
      withAction({ type: 'uri', uri: `https://example.com/${long(990)}` }),
      `${a}.uri`,
      /at most 1000/,
    )
    expectProblem(
      withAction({ type: 'richmenuswitch', richMenuAliasId: 'm', data: long(301) }),
      `${a}.data`,
      /at most 300/,
    )
    // Only LINE's OpenAPI schema says which inputOption values exist.
    expectProblem(
      withAction({ type: 'postback', data: 'd', inputOption: 'openDoor' }),
      `${a}.inputOption`,
      /LINE's schema/,
    )
  })

  it('takes 20 graphemes of label, counting a family emoji as one', () => {
    const { dir, add } = menuFolder()
    add('m', withAction({ type: 'postback', data: 'd', label: '👨‍👩‍👧‍👦'.repeat(20) }))
    expect(loadRichMenus(dir).problems).toEqual([])
  })
})
