/** @module The setup module's errors: the first admin's registration without the setup token. */
import { conflict, forbidden } from '../../lib/errors.ts'

const WHERE = 'it is in the server log at start and in the file setup-token in the data directory; or run `hearth admin create` on the server'

export const setupTokenRequired = () => forbidden(`This server has no admin yet: the first account is its admin and needs the setup token (setup_token): ${WHERE}`)
export const setupTokenInvalid = () => forbidden(`The setup token is not valid: ${WHERE}`)
export const setupCompletedMeanwhile = () => conflict('Another registration created the first admin meanwhile; register again (without the setup token) or sign in')
