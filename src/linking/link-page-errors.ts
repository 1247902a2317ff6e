import { AppError, type ErrorCode } from '../platform/errors.ts'

/**
 * Everything the account-link pages tell a shopper when something goes wrong, in English and
 * then Japanese as the pages' own text (a message's two lines; the page shows each on its own).
 * Shoppers read only these: never a field name or a schema's wording, which say nothing to them.
 * Each is an AppError so that its code keeps the page's HTTP status.
 */
const refusal = (code: ErrorCode, en: string, ja: string) => new AppError(code, `${en}\n${ja}`)

/** A refusal of the link token itself: no form can fix it, so the page shows no form. */
export class LinkTokenRefusal extends AppError {}

const AGAIN = {
  en: 'open LINE and tap "Link account" again.',
  ja: 'LINEで「アカウント連携」をもう一度タップしてください。',
}
const NEW_CODE = { en: 'request a new code.', ja: '新しいコードを送信してください。' }

const linkRefusal = (code: ErrorCode, en: string, ja: string) =>
  new LinkTokenRefusal(code, `${en}\n${ja}`)

/** A link token missing, malformed (400) or never issued (404). */
export const linkUnusable = (code: 'BAD_REQUEST' | 'NOT_FOUND') =>
  linkRefusal(code, `This link can't be used: ${AGAIN.en}`, `このリンクは使えません。${AGAIN.ja}`)

export const linkExpired = () =>
  linkRefusal(
    'GONE',
    `This link has expired: ${AGAIN.en}`,
    `このリンクは有効期限が切れています。${AGAIN.ja}`,
  )

export const linkOfLinkedAccount = () =>
  linkRefusal(
    'CONFLICT',
    'This link cannot be used: your LINE account is already linked to an online account. ' +
      'To link another, unlink first from the LINE menu.',
    'このLINEアカウントはすでにオンラインアカウントと連携済みのため、このリンクは使えません。' +
      '別のアカウントと連携するには、先にLINEのメニューから連携を解除してください。',
  )

/** A route this server's way of proving an account does not use. */
export const notUsedHere = () =>
  refusal(
    'NOT_FOUND',
    `This page is not used here: ${AGAIN.en}`,
    `このページはご利用いただけません。${AGAIN.ja}`,
  )

export const linkingNotOffered = () =>
  refusal(
    'UNAVAILABLE',
    'Sorry, linking your online shop account is not available yet.',
    '申し訳ありません。オンラインショップのアカウント連携は、まだご利用いただけません。',
  )

export const formTooLarge = () =>
  refusal(
    'PAYLOAD_TOO_LARGE',
    `The form is too large: ${AGAIN.en}`,
    `送信された内容が大きすぎます。${AGAIN.ja}`,
  )

/** Anything else (Postgres unreachable, a bug): the status is the app's (503 or 500). */
export const SOMETHING_WENT_WRONG =
  'Something went wrong on our side: try again in a moment.\n' +
  'ただいま処理できませんでした。しばらくしてからもう一度お試しください。'

export const emailInvalid = () =>
  refusal(
    'BAD_REQUEST',
    'Not a valid email address: check it and enter it again.',
    'メールアドレスの形式が正しくありません。確認してもう一度入力してください。',
  )

export const emailNotSent = () =>
  refusal(
    'UNAVAILABLE',
    'The email could not be sent: try again in a moment.',
    'メールを送信できませんでした。しばらくしてからもう一度お試しください。',
  )

export const codeNotDigits = () =>
  refusal(
    'BAD_REQUEST',
    'Enter the 6 digits from the email.',
    'メールに記載された6桁の数字を入力してください。',
  )

export const codeWrong = (left: number) =>
  refusal(
    'BAD_REQUEST',
    `Wrong code: ${left} ${left === 1 ? 'try' : 'tries'} left.`,
    `確認コードが正しくありません（あと${left}回入力できます）。`,
  )

export const codeTriesUsed = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    `Too many wrong codes: ${NEW_CODE.en}`,
    `確認コードの誤りが多すぎるため、このコードは使えません。${NEW_CODE.ja}`,
  )

/** A code id never issued for this link token (404), or none or a malformed one (400). */
export const codeUnknown = (code: 'BAD_REQUEST' | 'NOT_FOUND' = 'NOT_FOUND') =>
  refusal(code, `Unknown code: ${NEW_CODE.en}`, `確認コードが見つかりません。${NEW_CODE.ja}`)

export const codeUsed = () =>
  refusal(
    'GONE',
    `This code was already used: ${NEW_CODE.en}`,
    `この確認コードはすでに使用されています。${NEW_CODE.ja}`,
  )

export const codeExpired = () =>
  refusal(
    'GONE',
    `This code has expired: ${NEW_CODE.en}`,
    `確認コードの有効期限（10分）が切れています。${NEW_CODE.ja}`,
  )

const WAIT_10 = {
  en: 'wait 10 minutes and try again.',
  ja: '10分ほど待ってからもう一度お試しください。',
}
const WAIT_DAY = {
  en: 'you can ask again within 24 hours.',
  ja: '24時間以内に再びご利用いただけます。',
}

export const tooManyCodesToAddress = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    `Too many codes were sent to this email address: ${WAIT_10.en}`,
    `このメールアドレスへのコード送信が多すぎます。${WAIT_10.ja}`,
  )

export const tooManyCodesForLink = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    `Too many codes were requested with this link: ${WAIT_10.en}`,
    `このリンクからのコード送信が多すぎます。${WAIT_10.ja}`,
  )

export const tooManyCodesFromLineToday = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    `Too many codes were requested from this LINE account today: ${WAIT_DAY.en}`,
    `本日このLINEアカウントから送信できるコードの上限に達しました。${WAIT_DAY.ja}`,
  )

export const tooManyCodesToAddressToday = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    `Too many codes were sent to this email address today: ${WAIT_DAY.en}`,
    `本日このメールアドレスに送信できるコードの上限に達しました。${WAIT_DAY.ja}`,
  )

export const lineAccountLockedOut = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    'Too many wrong codes: linking from this LINE account is locked for up to 24 hours.',
    '確認コードの誤りが多すぎるため、このLINEアカウントからの連携を最大24時間停止しています。',
  )

export const addressLockedOut = () =>
  refusal(
    'TOO_MANY_REQUESTS',
    'Too many wrong codes for this email address: linking it is locked for up to 24 hours.',
    '確認コードの誤りが多すぎるため、このメールアドレスの連携を最大24時間停止しています。',
  )

/** An assertion from the shop's login that is not good (why goes to the log, not the page). */
export const loginUnchecked = () =>
  refusal(
    'BAD_REQUEST',
    `Your shop login could not be checked: ${AGAIN.en}`,
    `ショップのログインを確認できませんでした。${AGAIN.ja}`,
  )

export const loginExpired = () =>
  refusal(
    'GONE',
    `Your shop login has expired: ${AGAIN.en}`,
    `ショップのログインの有効期限が切れています。${AGAIN.ja}`,
  )

/** The callback URL met again (browser history): one nonce per assertion. */
export const loginUsed = () =>
  refusal(
    'GONE',
    `This shop login was already used: ${AGAIN.en}`,
    `このショップのログインはすでに使用されています。${AGAIN.ja}`,
  )
