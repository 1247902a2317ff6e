import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { imageSize } from 'image-size'
import { describe, expect, it } from 'vitest'
import { listMenuFolders } from '../../src/richmenu/richmenu-files.ts'
import { area, menuFolder, menuJson } from '../richmenu/menu-folder.ts'
import { cli } from '../support/cli.ts'

describe('kizuna richmenu validate', () => {
  it('passes every menu in richmenus/', async () => {
    const { code, stdout, stderr } = await cli(['richmenu', 'validate'])
    expect(stderr).toContain('5 menus, 0 with errors')
    expect(code).toBe(0)
    expect(stdout.trim().split('\n')).toEqual(listMenuFolders().map((n) => `ok    ${n}`))
  })

  it('fails on a broken folder, naming the file and field, one line per menu', async () => {
    const { dir, add } = menuFolder()
    add('good')
    add(
      'bad',
      menuJson(
        { segments: ['vip'] },
        {
          chatBarText: 'x'.repeat(15),
          areas: [area(0, 800, { type: 'postback', label: 'x'.repeat(21), data: 'd' })],
        },
      ),
    )
    add(
      'overlap',
      menuJson(
        { segments: [] },
        {
          areas: [
            area(0, 500, { type: 'message', text: 'a' }),
            area(400, 400, { type: 'message', text: 'b' }),
          ],
        },
      ),
    )
    const { code, stdout, stderr } = await cli(['richmenu', 'validate', '--dir', dir])
    expect(code).toBe(1)
    expect(stderr).toContain('3 menus, 1 with errors')
    expect(stdout.trim().split('\n')).toEqual([
      'FAIL  bad  menu.json richMenu.chatBarText: must be at most 14 characters (is 15); ' +
        'menu.json richMenu.areas[0].action.label: must be at most 20 characters (is 21)',
      'ok    good',
      'ok    overlap  warning: menu.json richMenu.areas[1].bounds: overlaps areas[0]; a tap on the overlap may go to either',
    ])
  })

  it('fails on a folder that does not exist rather than passing 0 menus', async () => {
    const { dir } = menuFolder()
    const res = await cli(['richmenu', 'validate', '--dir', join(dir, 'richmenu')])
    expect(res.code).toBe(1)
    expect(res.stderr).toBe(`error: no folder ${join(dir, 'richmenu')}\n`)
  })

  it('fails on a folder with no menus (an empty bind mount) rather than passing 0 menus', async () => {
    const { dir } = menuFolder()
    writeFileSync(join(dir, 'README.md'), '# menus\n')
    const res = await cli(['richmenu', 'validate', '--dir', dir])
    expect(res).toMatchObject({ code: 1, stdout: '' })
    expect(res.stderr).toBe(
      `error: no menus in ${dir}: a menu is a folder with menu.json and its image ` +
        '(richmenus/README.md)\n',
    )
  })
})

describe('kizuna richmenu draw', () => {
  it('writes image.png at the menu size, which then validates; refuses to overwrite', async () => {
    const { dir, add } = menuFolder()
    const folder = add('m', menuJson(), {})
    const before = await cli(['richmenu', 'validate', '--dir', dir])
    expect(before.code).toBe(1)
    expect(before.stdout).toContain('FAIL  m  m (image): a menu folder needs image.png')

    const drawn = await cli(['richmenu', 'draw', 'm', '--dir', dir])
    expect(drawn.stderr).toBe('')
    expect(drawn.code).toBe(0)
    expect(drawn.stdout.trim()).toBe(join(folder, 'image.png'))
    const png = readFileSync(join(folder, 'image.png'))
    expect(imageSize(png)).toMatchObject({ type: 'png', width: 800, height: 400 })
    const after = await cli(['richmenu', 'validate', '--dir', dir])
    expect(after.stdout.trim()).toBe('ok    m')
    expect(after.code).toBe(0)

    const again = await cli(['richmenu', 'draw', 'm', '--dir', dir])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('image.png exists; pass --force to replace it')
    expect((await cli(['richmenu', 'draw', 'm', '--dir', dir, '--force'])).code).toBe(0)
  })

  it("refuses a menu whose menu.json breaks LINE's rules, and an unknown menu", async () => {
    const { dir, add } = menuFolder()
    add('m', menuJson({}, { size: { width: 700, height: 400 } }), {})
    const res = await cli(['richmenu', 'draw', 'm', '--dir', dir])
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('richMenu.size.width: must be a whole number from 800 to 2500')
    expect(existsSync(join(dir, 'm', 'image.png'))).toBe(false)
    const missing = await cli(['richmenu', 'draw', 'nope', '--dir', dir])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(`error: no menu "nope" in ${dir}; the menus there: m\n`)
    expect(existsSync(join(dir, 'nope'))).toBe(false)
  })
})
