/** @module The configs module's errors. */
import { conflict, forbidden, notFound } from '../../lib/errors.ts'

/** Also another user's personal config: it is invisible, not forbidden. */
export const configNotFound = () => notFound('Config')

/** A group and name are set once per scope (and per user); later changes go through PUT. */
export const configAlreadySet = (group: string, name: string) => conflict(`${group}.${name} is already set; change it with PUT`)

export const globalConfigCreateAdminOnly = () => forbidden('Only admins set global configs; leave out scope (or send "personal") to keep a setting of your own')
export const globalConfigAdminOnly = () => forbidden('Only admins change global configs; set a personal one to override it for yourself')
