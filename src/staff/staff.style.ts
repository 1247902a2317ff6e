import { raw } from 'hono/html'

/** One small stylesheet: readable at phone width, 44px touch targets, visible focus. */
export const STAFF_STYLE = raw(`
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;color:#1a1a1a;background:#f4f5f7}
header{display:flex;justify-content:space-between;align-items:center;gap:1rem;padding:.75rem 1rem;background:#06c755;color:#fff}
header h1{margin:0;font-size:1.25rem}
header .store{margin:0;font-size:.9rem}
main{max-width:40rem;margin:0 auto;padding:1rem}
main.narrow{max-width:26rem;padding-top:3rem}
h1{font-size:1.4rem}
h2{margin:0 0 .5rem;font-size:1.15rem}
h3{margin:1rem 0 .25rem;font-size:1rem}
[lang=en]{color:inherit;opacity:.75;font-size:.9em}
.card{background:#fff;border-radius:12px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 3px #0002}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
label:first-child{margin-top:0}
input,select,button{font:inherit;min-height:44px;border-radius:8px}
input,select{width:100%;padding:.5rem .75rem;border:1px solid #888;background:#fff}
#barcode{font-size:1.5rem;letter-spacing:.05em;font-variant-numeric:tabular-nums}
input[aria-invalid=true]{border-color:#b00020}
button{padding:.5rem 1rem;border:0;background:#06c755;color:#fff;font-weight:600;cursor:pointer}
button.secondary{background:#fff;color:#1a1a1a;border:1px solid #888}
header button.secondary{border-color:#fff}
button:disabled{opacity:.6;cursor:progress}
fieldset{margin:0;padding:0;border:0;min-width:0}
#receipt-fields>button{width:100%;margin-top:1rem}
:focus-visible{outline:3px solid #0050b3;outline-offset:2px}
.row{display:flex;gap:.5rem}
.row input{flex:1;min-width:0}
.help{margin:.25rem 0 0;font-size:.85rem;color:#555}
#camera{margin-top:.75rem}
video{width:100%;margin-top:.5rem;border-radius:8px;background:#000}
.alert:empty{display:none}
.alert{margin:0 0 1rem;padding:.75rem 1rem;border-radius:8px;background:#fdecee;border:2px solid #b00020;color:#7a0016;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0}
#member-name{font-size:1.3rem;font-weight:700}
#member-points{font-size:1.3rem;font-variant-numeric:tabular-nums}
ul{margin:0;padding-left:1.25rem}
details{margin-top:1rem}
summary{cursor:pointer;padding:.6rem 0}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:.85rem}
td{padding:.125rem}
.result:empty{display:none}
.result{border:2px solid #06c755}
.result p{margin:.25rem 0}
.result strong{font-size:1.3rem}
@media (max-width:30rem){header{flex-wrap:wrap}main{padding:.5rem}}
`)
