/**
 * LINE's official signature test vector (LINE-API.md §1.2). Its secret is the test channel's
 * (TEST_CHANNEL_SECRET): read by global-setup.ts too, before TEST_DATABASE_URL is set.
 */
export const OFFICIAL_VECTOR = {
  body: '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}',
  secret: '8c570fa6dd201bb328f1c1eac23a96d8',
  signature: 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=',
}
