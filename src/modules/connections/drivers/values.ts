/**
 * @module Values from any driver as JSON can carry them, the same on every database: integers as
 * numbers while exact (beyond 2^53 as decimal strings), exact decimals (NUMERIC, DECIMAL) as numbers
 * when a double holds them exactly (15 significant digits or fewer) else as decimal strings, NaN and
 * the infinities as the strings "NaN", "Infinity", "-Infinity", times as ISO 8601 text, bytes as
 * base64 strings, JSON as JSON.
 */

/** A decimal integer's text as a number when exact, else the text. */
export function exactInteger(text: string): number | string {
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : text
}

/** A decimal's text (`-12.50`, `1e5`) as a number when 15 significant digits or fewer hold it, else the text. */
export function exactDecimal(text: string): number | string {
  const n = Number(text)
  if (!Number.isFinite(n)) return text === 'NaN' ? 'NaN' : text
  const digits = text.replace(/^[+-]/, '').replace(/[eE].*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '')
  return digits.length <= 15 ? n : text
}

export const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')

/** Any driver's value as JSON holds it. */
export function jsonSafe(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : String(value)
    case 'bigint':
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()
    case 'string':
    case 'boolean':
      return value
    case 'undefined':
      return null
    case 'object':
      if (value === null) return null
      if (value instanceof Uint8Array) return base64(value)
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
      if (Array.isArray(value)) return value.map(jsonSafe)
      return value
    default:
      return String(value)
  }
}
