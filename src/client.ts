/** @module What frontends import for Eden: `treaty<App>('http://localhost:8787')`. */
export type { App } from './app.ts'
