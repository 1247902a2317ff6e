/**
 * What RFC 3986 takes as it is in a path, query or fragment: unreserved and sub-delims
 * characters, `:`, `@`, `/`, `?`, and a `%` that starts an escape. The URL parser leaves others
 * (`{`, `}`, `|`, `^`, a backtick, `\`, `[`, `]`, a second `#`, a stray `%`) as written.
 */
const OUTSIDE_RFC3986 = /%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/gu

/**
 * `url` as LINE takes a URL (LINE-API.md §3: percent-encoded UTF-8, RFC 3986) and a template's
 * `"format": "uri"` checks it: built from the parsed origin, path, query and fragment, each
 * character RFC 3986 refuses percent-encoded. A user and password in the URL are left out (they
 * would be shown to whoever gets the message). Undefined when the URL does not parse. The host
 * is as the parser writes it (punycode): one RFC 3986 refuses (`https://a{b.example/`) stays.
 */
export function rfc3986Url(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined
  const { origin, pathname, search, hash } = new URL(url)
  const fragment = hash ? `#${encode(hash.slice(1))}` : ''
  return origin + encode(pathname) + encode(search) + fragment
}

function encode(part: string): string {
  return part.replace(OUTSIDE_RFC3986, (c) =>
    Array.from(Buffer.from(c), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  )
}

/** An RFC 3986 host: an IP literal, or a name of unreserved and sub-delims characters. */
const RFC3986_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::[0-9]*)?$/

/**
 * Whether the URL parses with a host RFC 3986 takes: the URL parser takes `{`, `}`, `"` and a
 * backtick in a host, which no encoding mends (the template's `"format": "uri"` refuses them).
 */
export function hasRfc3986Host(url: string): boolean {
  return URL.canParse(url) && RFC3986_HOST.test(new URL(url).host)
}
