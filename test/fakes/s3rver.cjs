/**
 * s3rver (an S3-compatible server on disk) for the storage tests, run under Node:
 *   node test/fakes/s3rver.cjs <directory> <bucket>
 * It listens on a free loopback port, creates the bucket and prints `listening <port>` once ready.
 * s3rver answers AbortMultipartUpload (DELETE /bucket/key?uploadId=…) with 405 and keeps the parts;
 * this adds it, as S3 has it, so a test can see that an aborted upload leaves no parts behind.
 * It also reads `Range: bytes=N-0` as the whole object (an end of 0 is falsy to it); fixed here.
 */
'use strict'

const fs = require('node:fs/promises')
const S3rver = require('s3rver')

const [directory, bucket] = process.argv.slice(2)
if (!directory || !bucket) {
  console.error('usage: node s3rver.cjs <directory> <bucket>')
  process.exit(2)
}

const server = new S3rver({ directory, address: '127.0.0.1', port: 0, silent: true, configureBuckets: [{ name: bucket, configs: [] }] })

// Path-style only: /<bucket>/<key>?uploadId=<id>. Put before s3rver's router (the last middleware).
server.middleware.splice(server.middleware.length - 1, 0, async (ctx, next) => {
  const uploadId = ctx.query.uploadId
  const [, name, ...key] = ctx.path.split('/')
  if (ctx.method !== 'DELETE' || typeof uploadId !== 'string' || key.length === 0) return next()
  if (!/^[0-9a-f]+$/.test(uploadId)) ctx.throw(400, 'bad uploadId')
  const dir = `${ctx.store.getResourcePath(name, undefined, 'uploads')}/${uploadId}`
  const found = await fs.stat(dir).then(() => true, () => false)
  if (!found) {
    ctx.status = 404
    ctx.type = 'application/xml'
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>'
    return
  }
  await fs.rm(dir, { recursive: true, force: true })
  ctx.status = 204
})

const getObject = server.store.getObject.bind(server.store)
// eslint-disable-next-line no-new-wrappers -- a truthy 0 gets past s3rver's `options.end || Infinity`
server.store.getObject = (bucket, key, options) => getObject(bucket, key, options && options.end === 0 ? { ...options, end: new Number(0) } : options)

server.run().then(
  ({ port }) => console.log(`listening ${port}`),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
