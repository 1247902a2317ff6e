/**
 * A LINE user id as LINE issues them: U and 32 lowercase hex digits (LINE-API.md §4). A webhook
 * event from another sender is not applied, and a multicast naming one is refused whole by LINE.
 */
export const LINE_USER_ID = /^U[0-9a-f]{32}$/
