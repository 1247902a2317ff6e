import type { messagingApi } from '@line/bot-sdk'

type Message = messagingApi.Message

const UNLINK_HINT =
  'You can unlink at any time: tap "Unlink account" in the menu, or Help.\n' +
  '連携はいつでも解除できます（メニューの「連携解除」または「ヘルプ」から）。'

/** The link button (LINE requires telling the shopper they can unlink at any time). */
export function linkInviteMessages(url: string): Message[] {
  return [
    {
      type: 'text',
      text:
        'Link your online shop account to keep your purchases and points in one place.\n' +
        'オンラインショップのアカウントと連携すると、購入履歴とポイントをまとめられます。\n\n' +
        UNLINK_HINT,
    },
    {
      type: 'template',
      altText: 'Link your online account / アカウント連携',
      template: {
        type: 'buttons',
        text: 'Tap to link your online account (valid for 10 minutes).\nボタンから連携してください（10分間有効）。',
        actions: [{ type: 'uri', label: 'Link account / 連携する', uri: url }],
      },
    },
  ]
}

const text = (t: string): Message[] => [{ type: 'text', text: t }]

export const linkUnavailableMessages = (): Message[] =>
  text(
    'Sorry, account linking is not available right now. Please try again in a moment.\n' +
      '現在アカウント連携を開始できません。しばらくしてからもう一度お試しください。',
  )

/** No way to prove an online account on this server (see accountProof): trying again won't help. */
export const linkNotOfferedMessages = (): Message[] =>
  text(
    'Sorry, linking your online shop account is not available yet.\n' +
      'オンラインショップのアカウント連携は、まだご利用いただけません。',
  )

export const alreadyLinkedMessages = (): Message[] =>
  text(
    'Your online account is already linked.\nオンラインアカウントは連携済みです。\n\n' +
      UNLINK_HINT,
  )

/** A nonce confirmed after another link was made for the LINE account (an older link token). */
export const secondLinkRefusedMessages = (): Message[] =>
  text(
    'This LINE account is already linked to an online account, so we did not link another ' +
      'one. To link a different account, unlink first.\n' +
      'このLINEアカウントはすでに別のオンラインアカウントと連携済みのため、連携しませんでした。' +
      '別のアカウントと連携するには、先に連携を解除してください。\n\n' +
      UNLINK_HINT,
  )

export const linkedMessages = (): Message[] => [
  {
    type: 'text',
    text:
      'Your online account is now linked. Purchases and points are shown together.\n' +
      'オンラインアカウントとの連携が完了しました。\n\n' +
      UNLINK_HINT,
    quickReply: {
      items: [
        {
          type: 'action',
          action: { type: 'postback', label: 'Unlink / 連携解除', data: 'action=unlink' },
        },
      ],
    },
  },
]

export const linkExpiredMessages = (): Message[] =>
  text(
    'This link has expired or was already used. Please try again from the menu.\n' +
      'リンクの有効期限が切れているか、すでに使用されています。もう一度メニューからお試しください。',
  )

export const linkConflictMessages = (): Message[] =>
  text(
    'This online account is already linked to another LINE account, so we did not link it. ' +
      'Please contact the store if this is your account.\n' +
      'このオンラインアカウントは別のLINEアカウントと連携済みのため、連携できませんでした。' +
      'お心当たりがない場合は店舗にお問い合わせください。',
  )

/** The LINE friend's customer holds another shop account: two are never merged. */
export const linkOtherShopAccountMessages = (): Message[] =>
  text(
    'Your membership already has another online shop account, so we did not link this one ' +
      '(two shop accounts are never joined). Please contact the store if both are yours.\n' +
      '会員情報にはすでに別のオンラインショップのアカウントがあるため、連携できませんでした。' +
      'どちらもご自身のアカウントの場合は店舗にお問い合わせください。',
  )

export const unlinkedMessages = (): Message[] =>
  text(
    'Your online account has been unlinked from LINE. Your purchases stay with your online ' +
      'account; you can link again at any time.\n' +
      'オンラインアカウントとの連携を解除しました。いつでも再連携できます。',
  )

export const notLinkedMessages = (): Message[] =>
  text('No online account is linked to this LINE account.\n連携中のアカウントはありません。')
