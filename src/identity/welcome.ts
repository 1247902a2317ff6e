import type { messagingApi } from '@line/bot-sdk'

/** The greeting a new or returning friend receives (the member card replaces it later). */
export function welcomeMessages(returning: boolean): messagingApi.Message[] {
  return [
    {
      type: 'text',
      text: returning
        ? 'Welcome back! You will receive your member news here again.\nおかえりなさい！'
        : 'Thank you for adding us as a friend! Your member benefits start today.\n友だち追加ありがとうございます！',
    },
  ]
}
