// parquet_check.mjs - reads a Parquet file with an independent reader
// (hyparquet, not DuckDB) and prints what the e2e tests check, as one JSON
// object on stdout:
//   {"num_rows": N, "row_groups": G, "columns": [top-level names],
//    "leaf_columns": ["a", "b.c", ...], "codecs": ["SNAPPY", ...] (one per
//    column chunk, every row group), "created_by": "...",
//    "rows": [{col: value, ...}, ...]}
// BigInt values become numbers when they are safe integers, strings
// otherwise; timestamps become ISO-8601 strings; byte arrays arrays of bytes.
// Usage: node parquet_check.mjs FILE.parquet   (exit 1 with a message on error)
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

// hyparquet is installed in tests/node_modules (tests/package.json); resolve
// it from there whatever the working directory is.
const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(join(here, '..', 'package.json'))
let hyparquet
try {
  hyparquet = await import(pathToFileURL(require.resolve('hyparquet')).href)
} catch (e) {
  console.error(`parquet_check: cannot load hyparquet (run: cd tests && npm install): ${e.message}`)
  process.exit(2)
}
const { parquetMetadata, parquetSchema, parquetReadObjects } = hyparquet

function plain(v) {
  if (v === undefined || v === null) return null
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()
  }
  if (Object.is(v, -0)) return 0
  if (v instanceof Date) return v.toISOString()
  if (v instanceof Uint8Array) return Array.from(v)
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v, plain)
  if (typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = plain(v[k])
    return o
  }
  return v
}

const file = process.argv[2]
if (!file) {
  console.error('usage: node parquet_check.mjs FILE.parquet')
  process.exit(2)
}
try {
  const buf = readFileSync(file)
  const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
  const metadata = parquetMetadata(arrayBuffer)
  const tree = parquetSchema(metadata)
  const columns = tree.children.map((c) => c.element.name)
  const leaf_columns = []
  const codecs = []
  for (const rg of metadata.row_groups) {
    for (const cc of rg.columns) {
      codecs.push(cc.meta_data ? cc.meta_data.codec : null)
      if (rg === metadata.row_groups[0]) leaf_columns.push(cc.meta_data ? cc.meta_data.path_in_schema.join('.') : null)
    }
  }
  const rows = await parquetReadObjects({ file: arrayBuffer, metadata })
  const out = {
    num_rows: plain(metadata.num_rows),
    row_groups: metadata.row_groups.length,
    columns,
    leaf_columns,
    codecs,
    created_by: metadata.created_by ?? null,
    rows: rows.map(plain),
  }
  process.stdout.write(JSON.stringify(out) + '\n')
} catch (e) {
  console.error(`parquet_check: ${file}: ${e && e.message ? e.message : e}`)
  process.exit(1)
}
