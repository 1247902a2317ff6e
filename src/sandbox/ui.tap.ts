/**
 * The sandbox page's taps and posts. One delegated listener: a tapped postback (with its
 * displayText) or message action posts the user's event, like the LINE app (a rich menu's
 * richmenuswitch too); a datetimepicker opens a picker whose OK posts the postback with its
 * params; uri actions are plain links, and a tap on an action that is no link (a uri of a
 * refused scheme) follows no link around it.
 *
 * Taps and the page's forms post with fetch, so the page stays where the reader is: what a post
 * changes (the user's message, their menu, their buttons, a new user) comes over the live stream
 * (ui.live.ts). A refusal shows in the page's alert. Without fetch (or without script) forms
 * post as usual, and the server sends the page back to the user's chat.
 */
export const TAP_SCRIPT = `
document.addEventListener('click', function (event) {
  var target = event.target.closest('[data-action]')
  var section = target && target.closest('[data-user]')
  if (!section || target.getAttribute('href')) return
  event.preventDefault()
  var action
  try { action = JSON.parse(target.getAttribute('data-action')) } catch (e) { return }
  var path, fields
  if (action.type === 'postback') {
    path = 'postback'; fields = { data: action.data, displayText: action.displayText }
  }
  else if (action.type === 'message') { path = 'text'; fields = { text: action.text } }
  else if (action.type === 'richmenuswitch') {
    path = 'richmenuswitch'; fields = { alias: action.richMenuAliasId, data: action.data }
  }
  else if (action.type === 'datetimepicker') return pick(section, action)
  else return
  post(userForm(section, path, fields))
})

document.addEventListener('submit', function (event) {
  var form = event.target
  if (form.method !== 'post') return
  event.preventDefault()
  post(form)
})

function post(form) {
  if (!window.fetch || !window.URLSearchParams) {
    if (!form.isConnected) document.body.appendChild(form)
    return form.submit()
  }
  var body = new URLSearchParams(new FormData(form))
  fetch(form.action, { method: 'POST', body: body, redirect: 'manual' }).then(function (res) {
    if (res.ok || res.type === 'opaqueredirect') return posted(form)
    return res.text().then(refused)
  }, function () { refused('The sandbox did not answer: is Kizuna still running?') })
}

function posted(form) {
  document.getElementById('sandbox-error').hidden = true
  if (form.className === 'dt-picker') form.remove()
  else form.reset()
}

function refused(text) {
  var alert = document.getElementById('sandbox-error')
  alert.textContent = text
  alert.hidden = false
}

document.addEventListener('click', function (event) {
  if (event.target.id === 'sandbox-error') event.target.hidden = true
})

function userForm(section, path, fields) {
  var form = document.createElement('form')
  form.method = 'post'
  form.action = 'users/' + encodeURIComponent(section.getAttribute('data-user')) + '/' + path
  Object.keys(fields).forEach(function (name) {
    var input = document.createElement('input')
    input.type = 'hidden'
    input.name = name
    input.value = String(fields[name] == null ? '' : fields[name])
    form.appendChild(input)
  })
  return form
}

// The LINE app's date/time picker: one under the chat at a time; OK posts the postback with
// params.date, params.time or params.datetime, Cancel sends nothing.
function pick(section, action) {
  var types = { date: 'date', time: 'time', datetime: 'datetime-local' }
  if (!Object.prototype.hasOwnProperty.call(types, action.mode)) return
  var old = section.querySelector('.dt-picker')
  if (old) old.remove()
  var form = userForm(section, 'postback', { data: action.data })
  form.className = 'dt-picker'
  var input = document.createElement('input')
  input.type = types[action.mode]
  input.name = action.mode
  input.required = true
  ;['initial', 'min', 'max'].forEach(function (key) {
    if (typeof action[key] !== 'string') return
    if (key === 'initial') input.value = action[key]
    else input.setAttribute(key, action[key])
  })
  var ok = document.createElement('button')
  ok.textContent = 'OK'
  var cancel = document.createElement('button')
  cancel.type = 'button'
  cancel.textContent = 'Cancel'
  cancel.addEventListener('click', function () { form.remove() })
  form.append(String(action.label || action.mode) + ' ', input, ok, cancel)
  section.querySelector('.chat').insertAdjacentElement('afterend', form)
  input.focus()
}
`
