// Imported `with { type: 'file' }`: a path, embedded into the compiled binary by `bun build --compile`.
declare module '@scalar/api-reference/browser/standalone.js' {
  const path: string
  export default path
}
