import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadRichMenus, richMenusDir } from '../../src/richmenu/richmenu-files.ts'
import { area, expectProblem, image, menuFolder, menuJson, problemsOf } from './menu-folder.ts'

describe('loadRichMenus: a valid folder', () => {
  it('loads with its keys, image and a stable content hash', () => {
    const { dir, add } = menuFolder()
    const folder = add('shop', menuJson({ alias: 'shop-home', default: true }))
    const first = loadRichMenus(dir)
    expect(first.problems).toEqual([])
    expect(first.warnings).toEqual([])
    expect(first.menus).toHaveLength(1)
    const [menu] = first.menus
    expect(menu).toMatchObject({
      name: 'shop',
      segments: ['member'],
      alias: 'shop-home',
      isDefault: true,
      richMenu: { size: { width: 800, height: 400 }, chatBarText: 'Menu' },
      image: { file: join(folder, 'image.png'), contentType: 'image/png' },
    })
    expect(menu?.contentHash).toMatch(/^[0-9a-f]{64}$/)
    expect(loadRichMenus(dir).menus[0]?.contentHash).toBe(menu?.contentHash)

    const hashes = new Set([menu?.contentHash])
    // The same pixels again: the same bytes, the same hash.
    writeFileSync(join(folder, 'image.png'), image())
    expect(loadRichMenus(dir).menus[0]?.contentHash).toBe(menu?.contentHash)
    writeFileSync(join(folder, 'image.png'), image(800, 400, 'png', '#2f6fb0'))
    hashes.add(loadRichMenus(dir).menus[0]?.contentHash)
    add('shop', menuJson({ alias: 'shop-home', default: true }, { chatBarText: 'Open' }), {})
    hashes.add(loadRichMenus(dir).menus[0]?.contentHash)
    expect(hashes.has(undefined)).toBe(false)
    expect(hashes.size).toBe(3)
  })

  it('takes a JPEG as image.jpg', () => {
    const { dir, add } = menuFolder()
    add('m', menuJson(), { 'image.jpg': image(800, 400, 'jpeg') })
    const { menus, problems } = loadRichMenus(dir)
    expect(problems).toEqual([])
    expect(menus[0]?.image.contentType).toBe('image/jpeg')
  })

  it('counts chatBarText in grapheme clusters (14 family emoji fit)', () => {
    const { dir, add } = menuFolder()
    add('m', menuJson({}, { chatBarText: '👨‍👩‍👧‍👦'.repeat(14) }))
    expect(loadRichMenus(dir).problems).toEqual([])
  })

  it('warns about overlapping areas but keeps the menu', () => {
    const { dir, add } = menuFolder()
    add(
      'm',
      menuJson(
        {},
        {
          areas: [
            area(0, 500, { type: 'message', text: 'a' }),
            area(400, 400, { type: 'message', text: 'b' }),
          ],
        },
      ),
    )
    const { menus, problems, warnings } = loadRichMenus(dir)
    expect(problems).toEqual([])
    expect(menus).toHaveLength(1)
    expect(warnings).toEqual([
      expect.objectContaining({
        field: 'richMenu.areas[1].bounds',
        message: expect.stringMatching(/overlaps areas\[0\]/),
      }),
    ])
  })
})

describe("loadRichMenus: Kizuna's rules", () => {
  it('refuses unknown keys, a bad segment and a bad folder name', () => {
    expectProblem(menuJson({ colour: 'red' }), 'colour', /not a menu.json key/)
    expectProblem(menuJson({ segments: ['member', 'gold'] }), 'segments[1]', /./)
    expectProblem(menuJson({ alias: 'Has Space' }), 'alias', /a-z, 0-9/)
    const { dir, add } = menuFolder()
    add('Bad_Name')
    expect(loadRichMenus(dir).problems).toEqual([
      expect.objectContaining({
        field: '(folder)',
        message: expect.stringMatching(/not a menu name/),
      }),
    ])
  })

  it('refuses a shared alias, a segment claimed twice and two defaults, in each folder', () => {
    const { dir, add } = menuFolder()
    add('a', menuJson({ alias: 'tab', segments: ['vip'], default: true }))
    add('b', menuJson({ alias: 'tab', segments: ['vip', 'member'], default: true }))
    add('c', menuJson({ segments: ['linked'] }))
    const { menus, problems } = loadRichMenus(dir)
    expect(menus.map((m) => m.name)).toEqual(['c'])
    const of = (name: string) =>
      problems
        .filter((p) => p.file === join(dir, name, 'menu.json'))
        .map((p) => [p.field, p.message])
    expect(of('a')).toEqual([
      ['alias', 'alias "tab" is also in b; keep it in one menu'],
      ['segments', 'segment "vip" is also in b; keep it in one menu'],
      ['default', '"default": true is also in b; keep it in one menu'],
    ])
    expect(of('b').map(([f]) => f)).toEqual(['alias', 'segments', 'default'])
  })

  it('refuses a richmenuswitch to an alias no folder defines, and takes one that is', () => {
    const { dir, add } = menuFolder()
    const tabs = (alias: string) =>
      menuJson(
        { alias, segments: [] },
        {
          areas: [
            area(0, 400, { type: 'richmenuswitch', richMenuAliasId: 'home', data: 'tab=home' }),
            area(400, 400, { type: 'richmenuswitch', richMenuAliasId: 'more', data: 'tab=more' }),
          ],
        },
      )
    add('home', tabs('home'))
    expect(loadRichMenus(dir).problems).toEqual([
      {
        file: join(dir, 'home', 'menu.json'),
        field: 'richMenu.areas[1].action.richMenuAliasId',
        message: 'no menu has "alias": "more"; add it to the menu this tab opens',
      },
    ])
    add('more', tabs('more'))
    const { menus, problems } = loadRichMenus(dir)
    expect(problems).toEqual([])
    expect(menus.map((m) => m.alias)).toEqual(['home', 'more'])
  })
})

describe('loadRichMenus: the image', () => {
  const imageProblems = (files: Record<string, Buffer | null>) =>
    problemsOf(menuJson(), files).map((p) => `${p.file} ${p.field}: ${p.message}`)

  it('refuses a missing image, two images, and data that is not PNG or JPEG', () => {
    expect(imageProblems({})).toEqual([
      expect.stringMatching(/^m \(image\): a menu folder needs image.png or image.jpg/),
    ])
    expect(imageProblems({ 'image.png': image(), 'image.jpg': image(800, 400, 'jpeg') })).toEqual([
      'm (image): has image.png and image.jpg; keep one',
    ])
    expect(imageProblems({ 'image.png': Buffer.from('GIF89a not really') })).toEqual([
      'm/image.png (image): is neither PNG nor JPEG data; export the image as PNG or JPEG',
    ])
  })

  it('checks the bytes, not the name', () => {
    expect(imageProblems({ 'image.jpg': image() })).toEqual([
      'm/image.jpg (image): holds PNG data; rename it to image.png',
    ])
  })

  it('refuses an image over 1 MB and one of another size', () => {
    const big = Buffer.concat([image(), Buffer.alloc(1024 * 1024)])
    expect(imageProblems({ 'image.png': big })).toEqual([
      expect.stringMatching(/^m\/image.png \(image\): is \d+ bytes; LINE takes at most 1048576/),
    ])
    expect(imageProblems({ 'image.png': image(801, 400) })).toEqual([
      'm/image.png (image): is 801×400 pixels; richMenu.size is 800×400: they must be the same',
    ])
  })
})

describe('the shipped richmenus/', () => {
  it('loads clean: one menu per segment, one default, tabs that switch', () => {
    const { menus, problems, warnings } = loadRichMenus(richMenusDir)
    expect(problems).toEqual([])
    expect(warnings).toEqual([])
    const bySegment = Object.fromEntries(menus.flatMap((m) => m.segments.map((s) => [s, m.name])))
    expect(bySegment).toEqual({
      new_friend: 'new-friend',
      member: 'member',
      vip: 'vip',
      linked: 'linked',
    })
    expect(menus.filter((m) => m.isDefault).map((m) => m.name)).toEqual(['new-friend'])
    const switches = menus.flatMap((m) =>
      (m.richMenu.areas ?? []).flatMap((a) =>
        a.action?.type === 'richmenuswitch' ? [a.action.richMenuAliasId] : [],
      ),
    )
    expect(new Set(switches)).toEqual(new Set(['member-home', 'member-more']))
    for (const m of menus) expect(m.image.bytes.length).toBeLessThan(300_000)
  })
})
