// The staff scan page (served as /staff/scan.js). Plain browser JavaScript, no build step.
// Every value from the server goes into the page with textContent, never as HTML.
;(() => {
  const $ = (id) => document.getElementById(id)
  const alertBox = $('alert')
  const scanForm = $('scan-form')
  const barcodeInput = $('barcode')
  const receiptForm = $('receipt-form')
  const receiptFields = $('receipt-fields')
  const result = $('result')
  /**
   * The barcode of the member on screen: the receipt is recorded against it. Their member card
   * when a card was scanned and they have one (a legacy card's receipt goes to the member card),
   * else what was scanned. A coupon is no proof of who is at the register: found by one, the
   * receipt goes to the coupon, which the API then uses, and nothing else of the member's.
   */
  let current = null
  /** The member on screen was found by a coupon: a receipt may use that coupon alone. */
  let byCoupon = false
  /**
   * The newest lookup or receipt. An answer that arrives after a newer one started (a receipt
   * still on its way when the next card is scanned) never replaces the member on screen.
   */
  let latest = 0
  /**
   * The lookup whose answer is awaited (0: none). Until it is shown the receipt form is off and
   * nobody is `current`: the form on screen is still the previous member's, and a receipt typed
   * into it then would be recorded against them.
   */
  let looking = 0
  /**
   * When each receipt id was first sent from this tab (`purchasedAt`): sent again (Record pressed
   * again after a lost answer, the receipt typed again) it is the same sale, at the same time. The
   * API takes another time under a recorded id as another sale (409: a register whose receipt
   * counter was reset). Kept in sessionStorage, by store and id, so that a reload or a login again
   * in the same tab (the session timed out) still sends the first time; the newest SOLD_AT_KEPT of
   * the last day are kept. Without sessionStorage (private mode quota, disabled) the page's
   * memory alone keeps them.
   */
  const SOLD_AT_KEY = 'kizuna.staff.soldAt.v1'
  const SOLD_AT_KEPT = 200
  const SOLD_AT_MAX_AGE_MS = 86_400_000
  const store = receiptForm.dataset.store ?? ''
  const soldAt = readSoldAt()

  /** The kept times, as [key, time] in the order first sent, without those older than a day. */
  function readSoldAt() {
    let kept = []
    try {
      const parsed = JSON.parse(sessionStorage.getItem(SOLD_AT_KEY) ?? '[]')
      if (Array.isArray(parsed)) kept = parsed
    } catch {}
    const since = Date.now() - SOLD_AT_MAX_AGE_MS
    return new Map(
      kept.filter(
        (entry) =>
          Array.isArray(entry) &&
          typeof entry[0] === 'string' &&
          typeof entry[1] === 'string' &&
          Date.parse(entry[1]) >= since,
      ),
    )
  }

  /**
   * The time `receiptId` was sold: now, the first time this tab sends it for this store. Read as
   * the API reads receipt ids (NFKC: `Ｒ-１２３` is `R-123`).
   */
  function purchasedAtOf(receiptId) {
    const key = `${store}\n${receiptId.normalize('NFKC')}`
    let at = soldAt.get(key)
    if (!at) {
      at = new Date().toISOString()
      soldAt.set(key, at)
      // The oldest go first (a Map keeps insertion order), and those older than a day.
      const since = Date.now() - SOLD_AT_MAX_AGE_MS
      for (const [old, oldAt] of soldAt) {
        if (soldAt.size <= SOLD_AT_KEPT && Date.parse(oldAt) >= since) break
        soldAt.delete(old)
      }
      try {
        sessionStorage.setItem(SOLD_AT_KEY, JSON.stringify([...soldAt]))
      } catch {}
    }
    return at
  }

  const TITLES = {
    400: '入力を確認してください / Check the form',
    401: 'ログインし直してください / Please log in again',
    403: '権限がありません / Not allowed',
    404: 'カードが見つかりません / Unknown card',
    409: '登録できません / Cannot record',
    410: '無効なカード / Card no longer valid',
    413: '大きすぎます / Too large',
    422: '読み取りエラー / Misread',
  }

  /** A problem of the page itself (the camera): said as it is, with what to do. */
  function showAlert(text) {
    alertBox.textContent = text
  }
  function showError(status, message, titles = TITLES) {
    const title =
      titles[status] ??
      (status >= 500 ? 'サーバーエラー / Server error' : `エラー / Error ${status}`)
    showAlert(`${title} (${status}): ${message}`)
  }
  const clearError = () => {
    alertBox.textContent = ''
  }

  /**
   * What to do when an answer is lost (the network, a gateway's 502/504, no answer in time): what
   * was asked may have been done, and each is safe to ask again. A receipt's id is its idempotency
   * key; scanning again would reset the receipt typed, so a receipt is sent again as it is.
   */
  const AGAIN = {
    scan: ['もう一度スキャンしてください', 'scan again'],
    receipt: [
      'もう一度「登録」を押してください（同じレシート番号が二度登録されることはありません）',
      'press Record again: the same receipt id is never recorded twice',
    ],
    void: ['もう一度「取り消す」を押してください', 'press Void again'],
  }

  /** A request with no answer by then is given up (a hung one would keep Record off for good). */
  const TIMEOUT_MS = 15_000

  /**
   * POSTs to a same-origin staff endpoint (`scan` unless said); the session cookie authenticates.
   * `titles` names the error statuses for what was asked; `again` is what to do if its answer is
   * lost (one of AGAIN); `explain(status, error)` may say a refusal of the API's (its `error`)
   * better than its message does, for what the page asked.
   */
  async function post(
    body,
    { url = 'scan', titles = TITLES, again = AGAIN.scan, explain = () => undefined } = {},
  ) {
    const [againJa, againEn] = again
    let res
    let json = null
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        credentials: 'same-origin',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      json = await res.json().catch((error) => {
        if (error?.name === 'TimeoutError') throw error
        return null
      })
    } catch (error) {
      showAlert(
        error?.name === 'TimeoutError'
          ? `サーバーから応答がありません。${againJa} / no answer from Kizuna in time: ${againEn}`
          : `サーバーに接続できません。ネットワークを確認して、${againJa} / ` +
              `cannot reach Kizuna: check the network, then ${againEn}`,
      )
      return null
    }
    if (res.ok && json) {
      clearError()
      return json
    }
    const reason = json?.error?.message
    if (res.ok || res.status >= 500 || !reason) {
      // A server error, or no answer of Kizuna's at all (a gateway's empty 502/504, an answer cut
      // off): what to do is to ask again, which is safe. The API's own advice to a register
      // ("busy …; scan again") gives way to this page's: scanning again resets the receipt.
      const said = reason?.replace(/[;,:]\s*scan again$/, '') ?? 'no answer from Kizuna'
      showError(res.status, `${said}. ${againJa} / ${againEn}`, titles)
    } else {
      const explained = explain(res.status, json.error)
      if (explained) showAlert(explained)
      else showError(res.status, reason, titles)
    }
    if (res.status === 401) setTimeout(() => location.reload(), 1500)
    return null
  }

  /**
   * A coupon is no proof of who holds it: found by one, the API gives no name and no balance, and
   * the page says whom it shows instead.
   */
  const COUPON_HOLDER = 'クーポン利用者 / Coupon holder'

  function showMember(customer) {
    const noName = byCoupon ? COUPON_HOLDER : '（名前なし / no name）'
    $('member-name').textContent = customer.displayName ?? noName
    $('member-tier').textContent = customer.tier
    $('member-points').textContent =
      customer.points === null ? '—' : `${customer.points.toLocaleString('ja-JP')} pt`
    const list = $('member-coupons')
    const select = $('coupon')
    list.replaceChildren()
    // Found by a coupon, the answer lists that coupon alone, and a receipt recorded against it
    // uses it: there is no None to choose.
    select.replaceChildren(...(byCoupon ? [] : [new Option('なし / None', '')]))
    for (const c of customer.coupons) {
      const label = `${c.title} (−${c.discountYen.toLocaleString('ja-JP')}円, ${c.code})`
      const li = document.createElement('li')
      li.textContent = label
      list.append(li)
      select.append(new Option(label, c.code))
    }
    if (customer.coupons.length === 0) {
      const li = document.createElement('li')
      li.textContent = 'なし / None'
      list.append(li)
    }
    // Found by a coupon, the receipt can use that coupon and nothing else (the API refuses
    // points and other coupons with a 403): points stay 0, the coupon is fixed, the page says why.
    const points = $('points-used')
    if (customer.points === null) points.removeAttribute('max')
    else points.max = String(customer.points)
    points.disabled = byCoupon
    select.disabled = byCoupon
    $('coupon-scan').hidden = !byCoupon
    $('member').hidden = false
    // A coupon used (by the receipt just recorded) or not usable leaves nothing to record against.
    const recordable = !byCoupon || customer.coupons.length > 0
    if (!recordable) current = null
    receiptForm.hidden = !recordable
  }

  function hideMember() {
    current = null
    $('member').hidden = true
    receiptForm.hidden = true
  }

  async function lookUp(barcode) {
    const code = barcode.trim()
    if (!code) return
    result.replaceChildren()
    const seq = ++latest
    looking = seq
    current = null
    // Off and busy until the answer is shown (and the receipt form reset for it).
    receiptFields.disabled = true
    receiptForm.setAttribute('aria-busy', 'true')
    const body = await post({ barcode: code })
    // A newer lookup started meanwhile: its answer is the one to show, and it turns the form on.
    if (looking !== seq) return
    looking = 0
    if (body) {
      current = body.card ?? code
      byCoupon = body.via === 'coupon'
      resetReceipt()
      showMember(body.customer)
      // Said in the status region too: a screen reader announces whom the scan found.
      const found = document.createElement('p')
      found.textContent = `会員 / Member: ${$('member-name').textContent}`
      result.prepend(found)
    } else hideMember()
    receiptFields.disabled = false
    receiptForm.removeAttribute('aria-busy')
  }

  scanForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    const value = barcodeInput.value
    barcodeInput.value = ''
    await lookUp(value)
    barcodeInput.focus()
  })

  // A scanner (or staff) typing while the IME is in full-width mode: the digits are composed and
  // the Enter goes to the IME (keyCode 229), which confirms them, and the form is not submitted,
  // so each scan would need a second Enter. An Enter that confirms the card field's text looks
  // it up too: at compositionend (Chrome, Firefox), or at once when it comes after (Safari).
  let enterConfirms = false
  barcodeInput.addEventListener('keydown', (event) => {
    const enter = event.code === 'Enter' || event.code === 'NumpadEnter'
    enterConfirms = enter && event.isComposing
    if (enter && !event.isComposing && event.keyCode === 229) scanForm.requestSubmit()
  })
  barcodeInput.addEventListener('compositionend', () => {
    if (!enterConfirms) return
    enterConfirms = false
    scanForm.requestSubmit()
  })

  /** A receipt line's fields, in the order of its row: name, and what staff are told to enter. */
  const LINE_FIELDS = [
    ['sku', 'SKU', 'the SKU'],
    ['qty', '数量', 'the quantity'],
    ['price', '単価', 'the unit price'],
  ]

  /**
   * The receipt's lines as typed, or the first field missing from a row with anything in it: an
   * empty price would be an item recorded free, an empty quantity a guess of 1, and a quantity and
   * price without a SKU a line dropped unsaid. Missing, its input says so (aria-invalid).
   */
  function readLines(form) {
    const lines = []
    for (const [i, row] of Array.from(form.querySelectorAll('tbody tr')).entries()) {
      const inputs = LINE_FIELDS.map(([name]) => row.querySelector(`[name=${name}]`))
      const values = inputs.map((input) => input.value.trim())
      if (values.every((value) => value === '')) continue
      const missing = values.indexOf('')
      if (missing >= 0) {
        const [, ja, en] = LINE_FIELDS[missing]
        const input = inputs[missing]
        input.setAttribute('aria-invalid', 'true')
        return {
          error: `明細 ${i + 1} 行目の${ja}を入力してください / Line ${i + 1}: enter ${en}`,
          input,
        }
      }
      const [sku, quantity, unitPrice] = values
      lines.push({ sku, quantity: Number(quantity), unitPrice: Number(unitPrice) })
    }
    return { lines }
  }

  /** The receipt form's fields said to be missing are no longer (a new try, the next receipt). */
  function clearInvalid() {
    for (const input of receiptForm.querySelectorAll('[aria-invalid]')) {
      input.removeAttribute('aria-invalid')
    }
  }

  /** An empty receipt form, for the next receipt. */
  function resetReceipt() {
    receiptForm.reset()
    clearInvalid()
  }

  receiptForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (!current) return
    const form = new FormData(receiptForm)
    const coupon = String(form.get('coupon') ?? '')
    const receiptId = String(form.get('receiptId') ?? '').trim()
    clearInvalid()
    const read = readLines(receiptForm)
    if (read.error) {
      showAlert(read.error)
      read.input.closest('details').open = true
      read.input.focus()
      return
    }
    const barcode = current
    // This receipt's member as named if another scan comes before its answer (found by a coupon:
    // no name is given).
    const holder = byCoupon ? COUPON_HOLDER : ''
    const button = receiptForm.querySelector('button[type=submit]')
    button.disabled = true
    result.replaceChildren()
    const seq = ++latest
    const body = await post(
      {
        barcode,
        receipt: {
          id: receiptId,
          purchasedAt: purchasedAtOf(receiptId),
          total: Number(form.get('total')),
          pointsUsed: Number(form.get('pointsUsed') || 0),
          couponsUsed: coupon ? [coupon] : [],
          lines: read.lines,
        },
      },
      {
        again: AGAIN.receipt,
        // Another card scanned meanwhile stays on screen after a void (as below).
        explain: (status, error) =>
          recordedAlready(receiptId, seq === latest ? barcode : null, status, error),
      },
    )
    button.disabled = false
    if (!body) return
    // Another card was scanned meanwhile: it stays on screen; this receipt is still reported.
    const stale = seq !== latest
    if (!stale) showMember(body.customer)
    const p = body.purchase
    const heading = document.createElement('p')
    const strong = document.createElement('strong')
    strong.textContent = `+${p.pointsEarned.toLocaleString('ja-JP')} pt`
    heading.append(
      stale ? `${body.customer.displayName ?? holder}: ` : '',
      p.replayed ? '登録済み / Already recorded: ' : '登録しました / Recorded: ',
      strong,
    )
    const balance = document.createElement('p')
    const coupons =
      p.couponsUsed.length > 0 ? `, クーポン / coupon ${p.couponsUsed.join(', ')}` : ''
    const used = `使用 / used ${p.pointsUsed} pt${coupons}, 合計 / total ${p.total.toLocaleString('ja-JP')}円`
    // A coupon's receipt is answered without the balance (whose it is, is not known).
    balance.textContent =
      p.points === null
        ? used
        : `新しい残高 / New balance: ${p.points.toLocaleString('ja-JP')} pt (${used})`
    // Taken back from here (a total typed with an extra zero, a return): the member on screen is
    // this receipt's unless another card was scanned before its answer.
    const undo = voidButton(receiptId, stale ? null : barcode)
    result.replaceChildren(heading, balance, undo)
    if (stale) return
    resetReceipt()
    barcodeInput.focus()
  })

  /**
   * A 409 for `receiptId` sent at another time than it was recorded with (the same member, total
   * and goods: the API checks those first): most likely the same sale sent again from another tab
   * or device, whose first answer was lost. The API's "a different sale needs its own receipt id"
   * would have it recorded again under a new id, the points earned twice: staff are told it is
   * recorded, when, and that a retry needs nothing; a button to void it (recorded against
   * `barcode`) if it is wrong. undefined for any other refusal.
   */
  function recordedAlready(receiptId, barcode, status, error) {
    const field = Array.isArray(error?.details) ? error.details[0]?.field : undefined
    if (status !== 409 || field !== 'receipt.purchasedAt') return undefined
    const iso = /purchased at (\S+?);/.exec(error.message ?? '')?.[1]
    const at = iso ? new Date(iso) : null
    const when =
      at && !Number.isNaN(at.getTime())
        ? at.toLocaleString('ja-JP', { dateStyle: 'short', timeStyle: 'short' })
        : ''
    const undo = voidButton(receiptId, barcode)
    result.replaceChildren(undo)
    return (
      `登録済みです / Already recorded (409): レシート ${receiptId} は${when ? ` ${when} に` : ''}` +
      '登録済みです。同じ会計のやり直しなら、することはありません。会員のポイントを確認し、誤りなら' +
      '下のボタンで取り消してください。 / ' +
      `Receipt ${receiptId} was already recorded${when ? ` (sold at ${when})` : ''}. ` +
      "If this is a retry of the same sale, there is nothing to do: check the member's points, " +
      'and void the receipt below if it is wrong.'
    )
  }

  /** A button voiding `receiptId`, then looking `barcode` up again (see voidReceipt). */
  function voidButton(receiptId, barcode) {
    const undo = document.createElement('button')
    undo.type = 'button'
    undo.className = 'secondary'
    undo.textContent = 'このレシートを取り消す / Void this receipt'
    undo.addEventListener('click', () => voidReceipt(receiptId, barcode, undo))
    return undo
  }

  const VOID_TITLES = { ...TITLES, 404: 'レシートが見つかりません / Unknown receipt' }

  /**
   * Voids a receipt of this store, once staff confirm; then looks `barcode` up again (the member
   * whose receipt it was, if still on screen) for their balance after it. `undo` is its button.
   */
  async function voidReceipt(receiptId, barcode, undo) {
    if (!window.confirm(`レシート ${receiptId} を取り消しますか？ / Void receipt ${receiptId}?`)) {
      return
    }
    // A void supersedes nothing: a card scanned (or a receipt recorded) before its answer is what
    // the screen shows after it, and a lookup on its way still gets its answer shown.
    const seq = latest
    const path = `receipts/${encodeURIComponent(receiptId)}/void`
    const body = await post({}, { url: path, titles: VOID_TITLES, again: AGAIN.void })
    if (!body) return
    const r = body.purchase.pointsReversed
    const unrecovered = r.unrecovered > 0 ? `, 回収できず / unrecovered ${r.unrecovered} pt` : ''
    const done = document.createElement('p')
    const earned = `付与の取消 / earned taken back ${r.earned} pt`
    const used = `使用の返却 / used returned ${r.used} pt`
    done.textContent = `取り消しました / Voided: ${receiptId} (${earned}, ${used}${unrecovered})`
    if (seq === latest) {
      if (barcode) await lookUp(barcode)
      result.replaceChildren(done)
    } else if (undo.isConnected) undo.replaceWith(done)
    else result.append(done)
  }

  // Camera scanning where the browser can decode EAN-13 itself (Chrome on Android, macOS).
  const cameraButton = $('camera')
  const video = $('camera-view')
  let stream = null
  /** Waiting for the camera (or the permission prompt): another tap then does nothing. */
  let starting = false
  let timer = 0

  const CAMERA_PROBLEMS = {
    NotAllowedError:
      'カメラが許可されていません / Camera not allowed: allow the camera for this page in the browser settings, or use the scanner',
    NotFoundError: 'カメラが見つかりません / No camera found: use the scanner',
    NotReadableError:
      'カメラを使えません / Camera in use: close the other app using it, or use the scanner',
  }
  const cameraProblem = (error) =>
    CAMERA_PROBLEMS[error?.name] ??
    `カメラを使えません / Camera unavailable (${error?.message ?? error}): use the scanner`

  /** The camera goes off; the scanner (a keyboard wedge types where the focus is) takes over. */
  function stopCamera() {
    clearTimeout(timer)
    for (const track of stream?.getTracks() ?? []) track.stop()
    stream = null
    video.srcObject = null
    video.hidden = true
    cameraButton.setAttribute('aria-pressed', 'false')
    barcodeInput.focus()
  }

  async function startCamera() {
    if (starting) return
    starting = true
    let opened = null
    try {
      const detector = new window.BarcodeDetector({ formats: ['ean_13'] })
      opened = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } })
      stream = opened
      video.srcObject = opened
      video.hidden = false
      cameraButton.setAttribute('aria-pressed', 'true')
      await video.play()
      readFrames(detector, opened)
    } catch (error) {
      if (opened && stream !== opened) return // turned off before it played
      stopCamera()
      showAlert(cameraProblem(error))
    } finally {
      starting = false
    }
  }

  /** Looks for a card in a frame every 200 ms while `mine` is the camera on. */
  function readFrames(detector, mine) {
    const tick = async () => {
      if (stream !== mine) return
      const codes = await detector.detect(video).catch(() => [])
      if (stream !== mine) return
      const found = codes.find((c) => /^\d{13}$/.test(c.rawValue))
      if (found) {
        stopCamera()
        await lookUp(found.rawValue)
        return
      }
      timer = setTimeout(tick, 200)
    }
    tick()
  }

  if ('BarcodeDetector' in window && navigator.mediaDevices?.getUserMedia) {
    window.BarcodeDetector.getSupportedFormats()
      .then((formats) => {
        cameraButton.hidden = !formats.includes('ean_13')
      })
      .catch(() => {
        cameraButton.hidden = true
      })
    cameraButton.addEventListener('click', () => (stream ? stopCamera() : startCamera()))
  }

  // The page is ready: the card field, off until now, takes the scanner's typing.
  $('scan-fields').disabled = false
  barcodeInput.focus()
})()
