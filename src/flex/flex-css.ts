/**
 * The static stylesheet for `renderFlexHtml` (flex-html.ts). Everything is scoped under `.fx`.
 * Sizes follow FLEX-AND-SANDBOX.md Feature 1 (bubble widths, radius, button colours); the
 * per-component values (spacing, sizes, colours) come inline from the message.
 */
export const flexCss = `
.fx{font-family:-apple-system,BlinkMacSystemFont,"Hiragino Sans","Noto Sans JP","Noto Sans CJK JP",
  "Helvetica Neue",Arial,sans-serif;color:#111111;font-size:16px;line-height:1.4;
  -webkit-text-size-adjust:100%;text-align:start}
.fx *,.fx *::before,.fx *::after{box-sizing:border-box;margin:0;padding:0}
:where(.fx a){color:inherit;text-decoration:none}
.fx-single{display:flex}
.fx-carousel{display:flex;align-items:stretch;gap:9px;overflow-x:auto;padding-bottom:8px;
  scroll-snap-type:x mandatory}
.fx-carousel>.fx-bubble{flex:0 0 auto;scroll-snap-align:start}
.fx-bubble{display:flex;flex-direction:column;max-width:100%;background:#ffffff;
  border-radius:17px;overflow:hidden;position:relative;isolation:isolate}
.fx-nano,.fx-micro,.fx-deca,.fx-hecto,.fx-kilo{border-radius:10px}
.fx-giga{border-radius:5px}
.fx-block{display:flex;flex-direction:column;flex:0 0 auto}
.fx-body{flex:1 0 auto}
.fx-block>.fx-box{flex:1 0 auto}
.fx-box{display:flex;position:relative;min-width:0}
.fx-vertical{flex-direction:column}
.fx-horizontal{flex-direction:row}
.fx-baseline{flex-direction:row;align-items:baseline}
.fx-horizontal>*,.fx-baseline>*{min-width:0}
.fx-text{display:block;overflow-wrap:anywhere;min-width:0}
.fx-nowrap{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.fx-wrap{white-space:pre-wrap}
.fx-clamp{display:-webkit-box;-webkit-box-orient:vertical;overflow:hidden;white-space:pre-wrap}
.fx-image{display:flex;justify-content:center;min-width:0}
.fx-image-frame{position:relative;max-width:100%;overflow:hidden;flex:0 0 auto}
.fx-image-frame>img{position:absolute;top:0;left:0;width:100%;height:100%;display:block}
.fx-icon{display:inline-block;flex:0 0 auto}
.fx-icon>img{display:block;width:auto}
.fx-button{display:flex;align-items:center;justify-content:center;border-radius:8px;
  padding:0 16px;font-size:16px;text-align:center;min-width:0}
.fx-button>span{overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.fx-button-md{height:52px}
.fx-button-sm{height:40px}
.fx-button-primary{background-color:#17c950;color:#ffffff}
.fx-button-secondary{background-color:#dcdfe5;color:#111111}
.fx-button-link{color:#42659a}
.fx-separator{flex:0 0 auto;border:0 solid #e5e5e5}
.fx-separator-h{border-top-width:1px;width:100%}
.fx-separator-v{border-inline-start-width:1px;align-self:stretch}
.fx-filler{min-width:0;min-height:0}
.fx-action{cursor:pointer}
.fx-cover{position:absolute;inset:0;z-index:1}
.fx-linked .fx-action{position:relative;z-index:2}
`
