import type { messagingApi } from '@line/bot-sdk'

/**
 * What a new or returning friend receives: the member card. A new friend's card carries the
 * thanks as its alt text (the notification and chat-list line); a returning friend gets a short
 * greeting before it.
 */
export function welcomeMessages(
  returning: boolean,
  memberCard: messagingApi.FlexMessage,
): messagingApi.Message[] {
  if (!returning) {
    return [
      {
        ...memberCard,
        altText:
          '友だち追加ありがとうございます！会員証をお届けします。\nThank you for adding us as a friend! Here is your member card.',
      },
    ]
  }
  return [
    {
      type: 'text',
      text: 'Welcome back! Here is your member card.\nおかえりなさい！会員証はこちらです。',
    },
    memberCard,
  ]
}
