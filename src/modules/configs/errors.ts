/** @module The configs module's errors. */
import { conflict, notFound } from '../../lib/errors.ts'

export const configNotFound = () => notFound('Config')

/** A group and name are set once; later changes go through PUT. */
export const configAlreadySet = (group: string, name: string) => conflict(`${group}.${name} is already set; change it with PUT`)
