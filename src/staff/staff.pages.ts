import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import { STAFF_STYLE } from './staff.style.ts'
import type { StaffSession } from './staff-session.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/** `hono/html` escapes every interpolated value; the page's data is filled in by scan.js. */
function layout(title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<link rel="icon" href="data:,">
<title>${title} · Kizuna</title>
<style>${STAFF_STYLE}</style>
</head>
<body>${body}</body>
</html>`
}

export function loginPage(error?: string): Html {
  return layout(
    'Staff login',
    html`<main class="narrow">
<h1>スタッフログイン <span lang="en">Staff login</span></h1>
<div id="alert" class="alert" role="alert">${error ?? ''}</div>
<form method="post" action="login" class="card">
  <label for="key">店舗 API キー <span lang="en">Store API key</span></label>
  <input id="key" name="key" type="password" autocomplete="off" required autofocus
    aria-describedby="key-help"${error ? html` aria-invalid="true"` : ''}>
  <p id="key-help" class="help">POS 用のキー（kz_…）。ブラウザにはセッションだけが残ります。
    <span lang="en">A POS key (kz_…); the browser keeps only a session.</span></p>
  <button type="submit">ログイン <span lang="en">Log in</span></button>
</form>
</main>`,
  )
}

function lineRow(i: number): Html {
  return html`<tr>
  <td><input name="sku" aria-label="SKU ${i}" autocomplete="off" maxlength="64"></td>
  <td><input name="qty" aria-label="数量 Quantity ${i}" type="number" min="1" max="10000"
    inputmode="numeric"></td>
  <td><input name="price" aria-label="単価 Unit price ${i}" type="number" min="0"
    inputmode="numeric"></td>
</tr>`
}

export function scanPage(session: StaffSession): Html {
  return layout(
    'Member scan',
    html`<header>
  <div>
    <h1>会員スキャン <span lang="en">Member scan</span></h1>
    <p class="store">${session.storeName} (${session.storeCode})</p>
  </div>
  <form method="post" action="logout">
    <button type="submit" class="secondary">ログアウト <span lang="en">Log out</span></button>
  </form>
</header>
<main>
<div id="alert" class="alert" role="alert"></div>
<section id="result" class="card result" role="status" aria-live="polite"></section>
<form id="scan-form" class="card" autocomplete="off">
<!-- Off until scan.js runs: a scanner's Enter before then would submit the form natively, as a
  GET with the card number in the URL (history, proxy logs). scan.js turns it on and focuses it. -->
<fieldset id="scan-fields" disabled>
  <label for="barcode">会員カード・クーポン番号 <span lang="en">Card or coupon number</span></label>
  <div class="row">
    <input id="barcode" name="barcode" inputmode="numeric" enterkeyhint="go" maxlength="64"
      spellcheck="false" required aria-describedby="barcode-help">
    <button type="submit">照会 <span lang="en">Look up</span></button>
  </div>
  <p id="barcode-help" class="help">スキャナーで読み取るか番号を入力して Enter。
    <span lang="en">Scan, or type the number and press Enter.</span></p>
  <button type="button" id="camera" class="secondary" hidden aria-pressed="false">
    カメラで読む <span lang="en">Use camera</span></button>
  <video id="camera-view" hidden muted playsinline aria-label="Camera preview"></video>
</fieldset>
</form>
<section id="member" class="card" hidden aria-labelledby="member-title">
  <h2 id="member-title">会員 <span lang="en">Member</span></h2>
  <dl>
    <dt>お名前 <span lang="en">Name</span></dt><dd id="member-name"></dd>
    <dt>ランク <span lang="en">Tier</span></dt><dd id="member-tier"></dd>
    <dt>ポイント <span lang="en">Points</span></dt><dd id="member-points"></dd>
  </dl>
  <h3>使えるクーポン <span lang="en">Usable coupons</span></h3>
  <ul id="member-coupons"></ul>
</section>
<form id="receipt-form" class="card" hidden aria-labelledby="receipt-title" autocomplete="off"
  data-store="${session.storeCode}">
<fieldset id="receipt-fields">
  <h2 id="receipt-title">レシート登録 <span lang="en">Record receipt</span></h2>
  <label for="receipt-id">レシート番号 <span lang="en">Receipt id</span></label>
  <input id="receipt-id" name="receiptId" required maxlength="100">
  <label for="total">合計（円） <span lang="en">Total (yen)</span></label>
  <input id="total" name="total" type="number" min="0" step="1" inputmode="numeric" required>
  <p id="coupon-scan" class="help" hidden>クーポンで照会しました。レシートに使えるのはこのクーポン
    だけです。ポイントや他のクーポンを使うときは会員カードをスキャンしてください。
    <span lang="en">Found by a coupon: a receipt can use this coupon only. Scan the member card to
    use points or other coupons.</span></p>
  <label for="points-used">使うポイント <span lang="en">Points to use</span></label>
  <input id="points-used" name="pointsUsed" type="number" min="0" step="1" value="0"
    inputmode="numeric">
  <label for="coupon">クーポン <span lang="en">Coupon</span></label>
  <select id="coupon" name="coupon"><option value="">なし / None</option></select>
  <details>
    <summary>明細（任意） <span lang="en">Lines (optional)</span></summary>
    <table>
      <thead><tr><th scope="col">SKU</th><th scope="col">数量 Qty</th>
        <th scope="col">単価 Price</th></tr></thead>
      <tbody>${lineRow(1)}${lineRow(2)}${lineRow(3)}</tbody>
    </table>
  </details>
  <button type="submit">登録 <span lang="en">Record</span></button>
</fieldset>
</form>
</main>
<script src="scan.js" defer></script>`,
  )
}
