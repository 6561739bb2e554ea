/** @module Time-sortable opaque ids (UUIDv7). */
export const newId = (): string => Bun.randomUUIDv7()
