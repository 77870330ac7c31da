/* catalog.c - the catalog in SQLite (see catalog.h for the contract).
 *
 * ON-DISK FORMAT (DATA/catalog.db, catalog format version 2)
 *
 * One SQLite database in WAL mode with synchronous=FULL: the COMMIT of a
 * publish is the moment files become visible and the delivery checkpoint
 * advances, so it must survive power loss, not only a crash of the process.
 *
 *   meta(key TEXT PRIMARY KEY, value TEXT)
 *       'format_version' -> '2'. Opening a catalog whose version is newer than
 *       CATALOG_FORMAT_VERSION fails; an older one is migrated in place, in
 *       the transaction that opens it (1 -> 2 adds tables.raw_seq, equal to
 *       delivered_seq: version 1 published both zones together).
 *   databases(id, name UNIQUE, created_ms)
 *   tables(id, db_id -> databases, name, created_ms, updated_ms,
 *          schema_version, delivered_seq, raw_seq, UNIQUE(db_id, name))
 *       schema_version is 0 until the first publish with columns;
 *       delivered_seq is 0 until the first publish. Every record of the
 *       table's stream with seq <= delivered_seq is in a published file of
 *       the processed zone, and every one with seq <= raw_seq in one of the
 *       raw zone. The raw zone follows: raw_seq <= delivered_seq.
 *   schema_versions(table_id, version, created_ms, PRIMARY KEY(table_id, version))
 *   columns(table_id, version, ordinal, name, type,
 *           PRIMARY KEY(table_id, version, ordinal))
 *       The full column list of every schema version, kept forever, so the
 *       history can be shown and files written under an old version can still
 *       be read with the columns they were written with.
 *   partitions(id, table_id, name, values_json, UNIQUE(table_id, name))
 *       name is the Hive path "k=v/k2=v2" with percent-encoded values, as
 *       delivery writes it; values_json is {"k":"v","k2":"v2"} with the values
 *       decoded. Partitions are never deleted; the API lists the ones that
 *       hold live files.
 *   files(id, table_id, partition_id -> partitions (NULL: unpartitioned),
 *         zone 'raw'|'processed'|'curated', path UNIQUE, first_seq, last_seq,
 *         rows, bytes, schema_version, created_ms,
 *         state 'live'|'retired', retired_ms (NULL while live))
 *       path is relative to DATA/lake. A path names one file on disk, so it
 *       has one row whatever its state: publishing a path again (a replay, or
 *       a name a compaction retired earlier) updates that row and makes it
 *       live, and the garbage collector can no longer delete it.
 *
 * Indexes: files(table_id, state, zone) for live_files and the totals,
 * files(partition_id, state) for the per-partition totals, and a partial
 * index files(retired_ms) WHERE state = 'retired' for the garbage collector.
 * The UNIQUE and PRIMARY KEY constraints cover the other lookups.
 *
 * CONCURRENCY
 *
 * One connection per tarn_catalog, used under c->mu, so calls are serialized
 * in the process and the connection is opened with SQLITE_OPEN_NOMUTEX.
 * Writes take the write lock up front (BEGIN IMMEDIATE) so they never fail
 * halfway with SQLITE_BUSY on a lock upgrade; busy_timeout covers other
 * processes (an operator's sqlite3 shell). Reads that take more than one
 * statement run in a deferred transaction to see one snapshot.
 *
 * Statements are prepared per call: the catalog is touched a few times per
 * delivery interval, not per record, and it keeps every statement's life
 * inside one function.
 */
#include "catalog.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define CATALOG_FORMAT_VERSION 2
#define CATALOG_BUSY_TIMEOUT_MS 10000

struct tarn_catalog {
    sqlite3 *db;
    pthread_mutex_t mu;
};

static const char catalog_schema_sql[] =
    "CREATE TABLE meta("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE databases("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE tables("
    "  id INTEGER PRIMARY KEY,"
    "  db_id INTEGER NOT NULL REFERENCES databases(id),"
    "  name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  schema_version INTEGER NOT NULL DEFAULT 0,"
    "  delivered_seq INTEGER NOT NULL DEFAULT 0,"
    "  raw_seq INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(db_id, name)"
    ");"
    "CREATE TABLE schema_versions("
    "  table_id INTEGER NOT NULL REFERENCES tables(id),"
    "  version INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(table_id, version)"
    ");"
    "CREATE TABLE columns("
    "  table_id INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  ordinal INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  PRIMARY KEY(table_id, version, ordinal),"
    "  FOREIGN KEY(table_id, version) REFERENCES schema_versions(table_id, version)"
    ");"
    "CREATE TABLE partitions("
    "  id INTEGER PRIMARY KEY,"
    "  table_id INTEGER NOT NULL REFERENCES tables(id),"
    "  name TEXT NOT NULL,"
    "  values_json TEXT NOT NULL,"
    "  UNIQUE(table_id, name)"
    ");"
    "CREATE TABLE files("
    "  id INTEGER PRIMARY KEY,"
    "  table_id INTEGER NOT NULL REFERENCES tables(id),"
    "  partition_id INTEGER REFERENCES partitions(id),"
    "  zone TEXT NOT NULL CHECK(zone IN ('raw', 'processed', 'curated')),"
    "  path TEXT NOT NULL UNIQUE,"
    "  first_seq INTEGER NOT NULL,"
    "  last_seq INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  schema_version INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK(state IN ('live', 'retired')),"
    "  retired_ms INTEGER"
    ");"
    "CREATE INDEX files_by_table ON files(table_id, state, zone);"
    "CREATE INDEX files_by_partition ON files(partition_id, state);"
    "CREATE INDEX files_retired ON files(retired_ms) WHERE state = 'retired';"
    "INSERT INTO meta(key, value) VALUES('format_version', '2');";

/* Format version 1 -> 2: the raw zone gets a checkpoint of its own. */
static const char catalog_migrate_2_sql[] =
    "ALTER TABLE tables ADD COLUMN raw_seq INTEGER NOT NULL DEFAULT 0;"
    "UPDATE tables SET raw_seq = delivered_seq;"
    "UPDATE meta SET value = '2' WHERE key = 'format_version';";

/* The columns catalog_read_file expects, for live_files and retired_before. */
#define CATALOG_FILE_SELECT                                                                   \
    "SELECT f.path, f.zone, coalesce(p.name, ''), f.first_seq, f.last_seq, f.rows, f.bytes, " \
    "f.schema_version, f.created_ms FROM files f LEFT JOIN partitions p ON p.id = f.partition_id "

/* The columns catalog_read_table_row expects. */
#define CATALOG_TABLE_SELECT                                                                    \
    "SELECT t.id, d.name, t.name, t.delivered_seq, t.schema_version, t.created_ms, t.updated_ms, t.raw_seq " \
    "FROM tables t JOIN databases d ON d.id = t.db_id "

/* ---- SQLite plumbing ------------------------------------------------------ */

static int catalog_code(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_NOMEM: return TARN_ENOMEM;
    case SQLITE_FULL: return TARN_ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return TARN_EUNAVAILABLE;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return TARN_ECORRUPT;
    case SQLITE_CONSTRAINT: return TARN_ECONFLICT;
    case SQLITE_TOOBIG: return TARN_ETOOBIG;
    default: return TARN_EIO;
    }
}

/* Turns a SQLite failure into a tarn code with SQLite's own message. */
static int catalog_sql_error(tarn_catalog *c, int sqlite_rc, const char *what, tarn_errbuf *eb)
{
    return tarn_errbuf_set(eb, catalog_code(sqlite_rc), "catalog: %s: %s", what, sqlite3_errmsg(c->db));
}

/* Binds parameters 1..n described by types: 'i' an int64_t, 't' a const
 * char * (NULL binds SQL NULL; not copied, so it must outlive the step). */
static int catalog_vbind(sqlite3_stmt *st, const char *types, va_list ap)
{
    int src = SQLITE_OK;
    for (int i = 0; types[i] && src == SQLITE_OK; i++) {
        if (types[i] == 'i') {
            src = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else {
            const char *s = va_arg(ap, const char *);
            src = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i + 1);
        }
    }
    return src;
}

/* Prepares sql into *st (finalized by the caller, also on failure: *st is
 * NULL or valid) and binds its parameters as catalog_vbind does. */
static int catalog_prepare(tarn_catalog *c, sqlite3_stmt **st, const char *what, tarn_errbuf *eb, const char *sql,
                           const char *types, ...)
{
    int src = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    if (src == SQLITE_OK) {
        va_list ap;
        va_start(ap, types);
        src = catalog_vbind(*st, types, ap);
        va_end(ap);
    }
    return src == SQLITE_OK ? TARN_OK : catalog_sql_error(c, src, what, eb);
}

/* Steps st: *row is 1 for a row, 0 when done. */
static int catalog_step(tarn_catalog *c, sqlite3_stmt *st, int *row, const char *what, tarn_errbuf *eb)
{
    int src = sqlite3_step(st);
    *row = src == SQLITE_ROW;
    if (src == SQLITE_ROW || src == SQLITE_DONE) return TARN_OK;
    return catalog_sql_error(c, src, what, eb);
}

/* Runs one statement that returns no rows. */
static int catalog_exec(tarn_catalog *c, const char *what, tarn_errbuf *eb, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        va_list ap;
        va_start(ap, types);
        src = catalog_vbind(st, types, ap);
        va_end(ap);
    }
    if (src == SQLITE_OK) src = sqlite3_step(st);
    int rc = src == SQLITE_DONE || src == SQLITE_ROW ? TARN_OK : catalog_sql_error(c, src, what, eb);
    sqlite3_finalize(st);
    return rc;
}

/* Copies a text column into a malloc'd string ("" for NULL). */
static int catalog_dup(sqlite3_stmt *st, int col, char **out, tarn_errbuf *eb)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!s && sqlite3_column_type(st, col) != SQLITE_NULL) goto oom;
    if (!s) n = 0;
    *out = malloc(n + 1);
    if (!*out) goto oom;
    if (n) memcpy(*out, s, n);
    (*out)[n] = '\0';
    return TARN_OK;
oom:
    *out = NULL;
    return tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: out of memory");
}

static void catalog_lock(tarn_catalog *c) { pthread_mutex_lock(&c->mu); }
static void catalog_unlock(tarn_catalog *c) { pthread_mutex_unlock(&c->mu); }

/* Starts a transaction: "BEGIN IMMEDIATE" for writes, "BEGIN" for reads. */
static int catalog_begin(tarn_catalog *c, const char *begin, tarn_errbuf *eb)
{
    if (!sqlite3_get_autocommit(c->db)) {
        /* Only a failed ROLLBACK can get here; do not build on its leftovers. */
        tarn_log_warn("catalog", "rolling back a transaction left open");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    int src = sqlite3_exec(c->db, begin, NULL, NULL, NULL);
    return src == SQLITE_OK ? TARN_OK : catalog_sql_error(c, src, "begin transaction", eb);
}

/* Ends the transaction begun by catalog_begin: commits if rc is TARN_OK,
 * else rolls back. Every statement must be finalized. Returns the final code;
 * no transaction is open afterwards. */
static int catalog_end(tarn_catalog *c, int rc, tarn_errbuf *eb)
{
    if (rc == TARN_OK) {
        int src = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (src == SQLITE_OK) return TARN_OK;
        rc = catalog_sql_error(c, src, "commit", eb);
    }
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, ...) already rolled back. */
    if (!sqlite3_get_autocommit(c->db)) {
        int src = sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        if (src != SQLITE_OK) tarn_log_error("catalog", "rollback failed: %s", sqlite3_errmsg(c->db));
    }
    return rc;
}

/* ---- validation and partitions -------------------------------------------- */

static int catalog_check_columns(const tarn_column *columns, size_t n, tarn_errbuf *eb)
{
    for (size_t i = 0; i < n; i++)
        if (!columns[i].name || !columns[i].name[0] || !columns[i].type || !columns[i].type[0])
            return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: column %zu has no name or no type", i);
    return TARN_OK;
}

static int catalog_zone_valid(const char *zone)
{
    return zone && (strcmp(zone, "raw") == 0 || strcmp(zone, "processed") == 0 || strcmp(zone, "curated") == 0);
}

/* Refuses what the query engine must never be handed: an absolute path or
 * one climbing out of the lake. */
static int catalog_check_file(const tarn_file *f, tarn_errbuf *eb)
{
    if (!f->path || !f->path[0]) return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file without a path");
    if (f->path[0] == '/')
        return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file path '%s' is not relative to the lake", f->path);
    for (const char *seg = f->path; seg;) {
        if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == '\0'))
            return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file path '%s' contains '..'", f->path);
        if ((seg = strchr(seg, '/'))) seg++;
    }
    if (!catalog_zone_valid(f->zone))
        return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file %s: zone '%s' is not raw, processed or curated",
                               f->path, f->zone ? f->zone : "(null)");
    if (f->rows < 0 || f->bytes < 0 || f->first_seq > f->last_seq)
        return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file %s: negative size or first_seq > last_seq", f->path);
    return TARN_OK;
}

/* Appends {"k":"v",...} for a partition name "k=v/k2=v2" to out. Values
 * are percent-decoded (delivery encodes them, see DESIGN.md); a '%' not
 * followed by two hex digits is kept as it is, as Hive does. */
static int catalog_partition_values(const char *name, tarn_buf *out, tarn_errbuf *eb)
{
    tarn_buf value;
    int rc = tarn_buf_append_char(out, '{');
    tarn_buf_init(&value, 0);
    for (const char *seg = name; !rc;) {
        const char *end = strchr(seg, '/');
        if (!end) end = seg + strlen(seg);
        const char *eq = memchr(seg, '=', (size_t)(end - seg));
        if (!eq || eq == seg) {
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "catalog: partition '%s' is not of the form k=v/k2=v2", name);
            break;
        }
        tarn_buf_reset(&value);
        for (const char *p = eq + 1; p < end && !rc; p++) {
            int hi, lo;
            if (*p == '%' && end - p >= 3 && (hi = tarn_hex_digit(p[1])) >= 0 &&
                (lo = tarn_hex_digit(p[2])) >= 0) {
                rc = tarn_buf_append_char(&value, (char)(hi << 4 | lo));
                p += 2;
            } else {
                rc = tarn_buf_append_char(&value, *p);
            }
        }
        if (seg != name && !rc) rc = tarn_buf_append_char(out, ',');
        if (!rc) rc = tarn_buf_append_json_str(out, seg, (size_t)(eq - seg));
        if (!rc) rc = tarn_buf_append_char(out, ':');
        if (!rc) rc = tarn_buf_append_json_str(out, value.data ? value.data : "", value.len);
        if (!*end) break;
        seg = end + 1;
    }
    if (!rc) rc = tarn_buf_append_char(out, '}');
    tarn_buf_free(&value);
    if (rc == TARN_ENOMEM || rc == TARN_ETOOBIG)
        rc = tarn_errbuf_set(eb, rc, "catalog: partition '%s': %s", name, tarn_err_message(rc));
    return rc;
}

/* ---- reading tables and files --------------------------------------------- */

void tarn_table_info_free(tarn_table_info *t)
{
    if (!t) return;
    free(t->db);
    free(t->name);
    for (size_t i = 0; i < t->ncolumns; i++) {
        free(t->columns[i].name);
        free(t->columns[i].type);
    }
    free(t->columns);
    memset(t, 0, sizeof *t);
}

void tarn_table_infos_free(tarn_table_info *t, size_t n)
{
    if (!t) return;
    for (size_t i = 0; i < n; i++) tarn_table_info_free(&t[i]);
    free(t);
}

void tarn_files_free(tarn_file *f, size_t n)
{
    if (!f) return;
    for (size_t i = 0; i < n; i++) {
        free(f[i].path);
        free(f[i].zone);
        free(f[i].partition);
    }
    free(f);
}

/* The columns of one schema version, in order, into a malloc'd array. */
static int catalog_read_columns(tarn_catalog *c, int64_t table_id, int64_t version, tarn_column **out, size_t *n,
                                tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    tarn_column *cols = NULL;
    size_t ncols = 0, cap = 0;
    int row = 0;
    int rc = catalog_prepare(c, &st, "read columns", eb,
                             "SELECT name, type FROM columns WHERE table_id = ?1 AND version = ?2 ORDER BY ordinal",
                             "ii", table_id, version);
    while (!rc && !(rc = catalog_step(c, st, &row, "read columns", eb)) && row) {
        if (ncols == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            tarn_column *p = realloc(cols, ncap * sizeof *p);
            if (!p) {
                rc = tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: out of memory");
                break;
            }
            cols = p;
            cap = ncap;
        }
        memset(&cols[ncols], 0, sizeof cols[ncols]);
        ncols++;
        if (!(rc = catalog_dup(st, 0, &cols[ncols - 1].name, eb))) rc = catalog_dup(st, 1, &cols[ncols - 1].type, eb);
    }
    sqlite3_finalize(st);
    if (rc) {
        for (size_t i = 0; i < ncols; i++) {
            free(cols[i].name);
            free(cols[i].type);
        }
        free(cols);
        cols = NULL;
        ncols = 0;
    }
    *out = cols;
    *n = ncols;
    return rc;
}

/* Fills *t from a row of CATALOG_TABLE_SELECT and reads its columns. On
 * failure *t holds what was filled; the caller frees it. */
static int catalog_read_table_row(tarn_catalog *c, sqlite3_stmt *st, tarn_table_info *t, tarn_errbuf *eb)
{
    int rc;
    t->id = sqlite3_column_int64(st, 0);
    t->delivered_seq = sqlite3_column_int64(st, 3);
    t->schema_version = sqlite3_column_int64(st, 4);
    t->created_ms = sqlite3_column_int64(st, 5);
    t->updated_ms = sqlite3_column_int64(st, 6);
    t->raw_seq = sqlite3_column_int64(st, 7);
    if ((rc = catalog_dup(st, 1, &t->db, eb))) return rc;
    if ((rc = catalog_dup(st, 2, &t->name, eb))) return rc;
    return catalog_read_columns(c, t->id, t->schema_version, &t->columns, &t->ncolumns, eb);
}

/* Reads db.table into *out (zeroed first). TARN_ENOTFOUND if missing. */
static int catalog_read_table(tarn_catalog *c, const char *db, const char *table, tarn_table_info *out,
                              tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    int rc = catalog_prepare(c, &st, "read table", eb, CATALOG_TABLE_SELECT "WHERE d.name = ?1 AND t.name = ?2",
                             "tt", db, table);
    if (!rc) rc = catalog_step(c, st, &row, "read table", eb);
    if (!rc && !row) rc = tarn_errbuf_set(eb, TARN_ENOTFOUND, "table %s.%s not found", db, table);
    if (!rc) rc = catalog_read_table_row(c, st, out, eb);
    sqlite3_finalize(st);
    if (rc) tarn_table_info_free(out);
    return rc;
}

/* The current schema version and checkpoints of a table, by id (raw_seq
 * may be NULL). */
static int catalog_table_state(tarn_catalog *c, int64_t table_id, int64_t *version, int64_t *delivered_seq,
                               int64_t *raw_seq, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = catalog_prepare(c, &st, "read table", eb,
                             "SELECT schema_version, delivered_seq, raw_seq FROM tables WHERE id = ?1", "i", table_id);
    if (!rc) rc = catalog_step(c, st, &row, "read table", eb);
    if (!rc && !row) rc = tarn_errbuf_set(eb, TARN_ENOTFOUND, "table id %" PRId64 " not found", table_id);
    if (!rc) {
        *version = sqlite3_column_int64(st, 0);
        *delivered_seq = sqlite3_column_int64(st, 1);
        if (raw_seq) *raw_seq = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Collects the rows of a CATALOG_FILE_SELECT statement. */
static int catalog_read_files(tarn_catalog *c, sqlite3_stmt *st, tarn_file **out, size_t *n, tarn_errbuf *eb)
{
    tarn_file *files = NULL;
    size_t nfiles = 0, cap = 0;
    int row = 0, rc;
    while (!(rc = catalog_step(c, st, &row, "read files", eb)) && row) {
        if (nfiles == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            tarn_file *p = realloc(files, ncap * sizeof *p);
            if (!p) {
                rc = tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: out of memory");
                break;
            }
            files = p;
            cap = ncap;
        }
        tarn_file *f = &files[nfiles++];
        memset(f, 0, sizeof *f);
        f->first_seq = sqlite3_column_int64(st, 3);
        f->last_seq = sqlite3_column_int64(st, 4);
        f->rows = sqlite3_column_int64(st, 5);
        f->bytes = sqlite3_column_int64(st, 6);
        f->schema_version = sqlite3_column_int64(st, 7);
        f->created_ms = sqlite3_column_int64(st, 8);
        if ((rc = catalog_dup(st, 0, &f->path, eb)) || (rc = catalog_dup(st, 1, &f->zone, eb)) ||
            (rc = catalog_dup(st, 2, &f->partition, eb)))
            break;
    }
    if (rc) {
        tarn_files_free(files, nfiles);
        files = NULL;
        nfiles = 0;
    }
    *out = files;
    *n = nfiles;
    return rc;
}

/* ---- writing -------------------------------------------------------------- */

/* If columns differ (name, type or order) from the table's current schema,
 * records them as the next version and makes it current. *version is the
 * current version on entry and the resulting one on return. */
static int catalog_put_schema(tarn_catalog *c, int64_t table_id, const tarn_column *columns, size_t ncolumns,
                              int64_t now, int64_t *version, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = TARN_OK, row = 0, same = *version > 0;
    size_t i = 0;

    if (same) {
        rc = catalog_prepare(c, &st, "read columns", eb,
                             "SELECT name, type FROM columns WHERE table_id = ?1 AND version = ?2 ORDER BY ordinal",
                             "ii", table_id, *version);
        while (!rc && same && !(rc = catalog_step(c, st, &row, "read columns", eb)) && row) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *type = (const char *)sqlite3_column_text(st, 1);
            same = i < ncolumns && name && type && strcmp(name, columns[i].name) == 0 &&
                   strcmp(type, columns[i].type) == 0;
            i++;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc) return rc;
        same = same && i == ncolumns;
    }
    if (same) return TARN_OK;

    int64_t next = *version + 1;
    rc = catalog_exec(c, "add schema version", eb,
                      "INSERT INTO schema_versions(table_id, version, created_ms) VALUES(?1, ?2, ?3)", "iii",
                      table_id, next, now);
    if (!rc)
        rc = catalog_prepare(c, &st, "add columns", eb,
                             "INSERT INTO columns(table_id, version, ordinal, name, type) VALUES(?1, ?2, ?3, ?4, ?5)",
                             "ii", table_id, next);
    for (i = 0; !rc && i < ncolumns; i++) {
        /* Parameters 1 and 2 stay bound across resets. */
        sqlite3_reset(st);
        int src = sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
        if (src == SQLITE_OK) src = sqlite3_bind_text(st, 4, columns[i].name, -1, SQLITE_STATIC);
        if (src == SQLITE_OK) src = sqlite3_bind_text(st, 5, columns[i].type, -1, SQLITE_STATIC);
        rc = src == SQLITE_OK ? catalog_step(c, st, &row, "add columns", eb)
                              : catalog_sql_error(c, src, "add columns", eb);
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = catalog_exec(c, "set schema version", eb, "UPDATE tables SET schema_version = ?2 WHERE id = ?1", "ii",
                          table_id, next);
    if (!rc) *version = next;
    return rc;
}

/* The id of a table's partition, created if missing; 0 for "" or NULL. */
static int catalog_put_partition(tarn_catalog *c, int64_t table_id, const char *name, int64_t *id, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    tarn_buf values;
    int row = 0;
    *id = 0;
    if (!name || !name[0]) return TARN_OK;

    int rc = catalog_prepare(c, &st, "read partition", eb,
                             "SELECT id FROM partitions WHERE table_id = ?1 AND name = ?2", "it", table_id, name);
    if (!rc) rc = catalog_step(c, st, &row, "read partition", eb);
    if (!rc && row) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc || row) return rc;

    tarn_buf_init(&values, 0);
    rc = catalog_partition_values(name, &values, eb);
    if (!rc)
        rc = catalog_exec(c, "add partition", eb,
                          "INSERT INTO partitions(table_id, name, values_json) VALUES(?1, ?2, ?3)", "itt", table_id,
                          name, values.data);
    if (!rc) *id = sqlite3_last_insert_rowid(c->db);
    tarn_buf_free(&values);
    return rc;
}

/* Adds a live file, or brings the row of the same path up to date and live
 * (same path = same records, see the file-top comment). */
static int catalog_put_file(tarn_catalog *c, int64_t table_id, const tarn_file *f, int64_t version, int64_t now,
                            tarn_errbuf *eb)
{
    int64_t partition_id;
    int rc = catalog_put_partition(c, table_id, f->partition, &partition_id, eb);
    if (rc) return rc;
    int64_t created = f->created_ms > 0 ? f->created_ms : now;
    rc = catalog_exec(c, "add file", eb,
                      "INSERT INTO files(table_id, partition_id, zone, path, first_seq, last_seq, rows, bytes, "
                      "schema_version, created_ms, state, retired_ms) "
                      "VALUES(?1, nullif(?2, 0), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'live', NULL) "
                      "ON CONFLICT(path) DO UPDATE SET partition_id = excluded.partition_id, zone = excluded.zone, "
                      "first_seq = excluded.first_seq, last_seq = excluded.last_seq, rows = excluded.rows, "
                      "bytes = excluded.bytes, schema_version = excluded.schema_version, "
                      "created_ms = excluded.created_ms, state = 'live', retired_ms = NULL "
                      "WHERE files.table_id = excluded.table_id",
                      "iittiiiiii", table_id, partition_id, f->zone, f->path, f->first_seq, f->last_seq, f->rows,
                      f->bytes, version, created);
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = tarn_errbuf_set(eb, TARN_ECONFLICT, "catalog: file %s belongs to another table", f->path);
    return rc;
}

/* ---- public API ----------------------------------------------------------- */

/* Creates the schema in a new catalog, or checks the format of an existing one. */
static int catalog_setup(tarn_catalog *c, const char *path, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = catalog_begin(c, "BEGIN IMMEDIATE", eb);
    if (!rc)
        rc = catalog_prepare(c, &st, "read format version", eb,
                             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", "");
    if (!rc) rc = catalog_step(c, st, &row, "read format version", eb);
    int exists = !rc && row && sqlite3_column_int64(st, 0) > 0;
    sqlite3_finalize(st);
    st = NULL;
    if (rc) goto out;

    if (!exists) {
        char *msg = NULL;
        int src = sqlite3_exec(c->db, catalog_schema_sql, NULL, NULL, &msg);
        if (src != SQLITE_OK)
            rc = tarn_errbuf_set(eb, catalog_code(src), "catalog: create schema in %s: %s", path,
                                 msg ? msg : sqlite3_errstr(src));
        sqlite3_free(msg);
        goto out;
    }
    rc = catalog_prepare(c, &st, "read format version", eb,
                         "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'format_version'", "");
    if (!rc) rc = catalog_step(c, st, &row, "read format version", eb);
    if (!rc) {
        int64_t version = row ? sqlite3_column_int64(st, 0) : 0;
        if (version < 1)
            rc = tarn_errbuf_set(eb, TARN_ECORRUPT, "catalog: %s has no valid format_version in its meta table",
                                 path);
        else if (version > CATALOG_FORMAT_VERSION)
            rc = tarn_errbuf_set(eb, TARN_EINVAL,
                                 "catalog: %s has format version %" PRId64
                                 ", newer than this tarn understands (%d); upgrade tarn",
                                 path, version, CATALOG_FORMAT_VERSION);
        else if (version < 2) {
            char *msg = NULL;
            int src = sqlite3_exec(c->db, catalog_migrate_2_sql, NULL, NULL, &msg);
            if (src != SQLITE_OK)
                rc = tarn_errbuf_set(eb, catalog_code(src), "catalog: migrating %s to format 2: %s", path,
                                     msg ? msg : sqlite3_errstr(src));
            else
                tarn_log_info("catalog", "%s migrated to format version 2 (raw zone checkpoint)", path);
            sqlite3_free(msg);
        }
    }
    sqlite3_finalize(st);
out:
    return catalog_end(c, rc, eb);
}

int tarn_catalog_open(const char *path, tarn_catalog **out, tarn_errbuf *eb)
{
    tarn_catalog *c = calloc(1, sizeof *c);
    sqlite3_stmt *st = NULL;
    int rc = TARN_OK, src, row = 0;

    *out = NULL;
    if (!c) return tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: out of memory");
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: cannot create a mutex");
    }
    src = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = c->db ? tarn_errbuf_set(eb, catalog_code(src), "catalog: cannot open %s: %s", path,
                                     sqlite3_errmsg(c->db))
                   : tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: cannot open %s: out of memory", path);
        goto fail;
    }
    sqlite3_busy_timeout(c->db, CATALOG_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(c->db, 1);

    /* journal_mode answers with the mode in force: a file system without
     * shared memory keeps the old one, and we want to know. */
    rc = catalog_prepare(c, &st, "set WAL mode", eb, "PRAGMA journal_mode = WAL", "");
    if (!rc) rc = catalog_step(c, st, &row, "set WAL mode", eb);
    if (!rc) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (!row || !mode || strcmp(mode, "wal") != 0)
            rc = tarn_errbuf_set(eb, TARN_EIO, "catalog: %s: cannot use WAL mode (journal mode is %s)", path,
                                 mode ? mode : "unknown");
    }
    sqlite3_finalize(st);
    if (rc) goto fail;
    if ((rc = catalog_exec(c, "set synchronous", eb, "PRAGMA synchronous = FULL", ""))) goto fail;
    if ((rc = catalog_exec(c, "enable foreign keys", eb, "PRAGMA foreign_keys = ON", ""))) goto fail;
    if ((rc = catalog_setup(c, path, eb))) goto fail;
    *out = c;
    return TARN_OK;

fail:
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return rc;
}

void tarn_catalog_close(tarn_catalog *c)
{
    if (!c) return;
    if (sqlite3_close(c->db) != SQLITE_OK)
        tarn_log_error("catalog", "close: %s", sqlite3_errmsg(c->db)); /* a statement leaked */
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int tarn_catalog_ensure_table(tarn_catalog *c, const char *db, const char *table, tarn_table_info *out,
                              tarn_errbuf *eb)
{
    int rc;
    memset(out, 0, sizeof *out);
    if (!db || !table || !tarn_name_valid(db) || !tarn_name_valid(table))
        return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: invalid database or table name");

    catalog_lock(c);
    /* The table usually exists: look first, without the write lock. */
    rc = catalog_begin(c, "BEGIN", eb);
    if (!rc) rc = catalog_read_table(c, db, table, out, eb);
    rc = catalog_end(c, rc, eb);
    if (rc != TARN_ENOTFOUND) goto out;

    int64_t now = tarn_now_ms();
    rc = catalog_begin(c, "BEGIN IMMEDIATE", eb);
    if (!rc)
        rc = catalog_exec(c, "create database", eb,
                          "INSERT INTO databases(name, created_ms) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING", "ti",
                          db, now);
    if (!rc)
        rc = catalog_exec(c, "create table", eb,
                          "INSERT INTO tables(db_id, name, created_ms, updated_ms) "
                          "SELECT id, ?2, ?3, ?3 FROM databases WHERE name = ?1 "
                          "ON CONFLICT(db_id, name) DO NOTHING",
                          "tti", db, table, now);
    if (!rc) rc = catalog_read_table(c, db, table, out, eb);
    rc = catalog_end(c, rc, eb);
out:
    catalog_unlock(c);
    if (rc) tarn_table_info_free(out);
    return rc;
}

int tarn_catalog_drop_new_table(tarn_catalog *c, int64_t table_id, const char *db, tarn_errbuf *eb)
{
    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN IMMEDIATE", eb);
    if (!rc)
        rc = catalog_exec(c, "drop new table", eb,
                          "DELETE FROM tables WHERE id = ?1 AND schema_version = 0 AND delivered_seq = 0 "
                          "AND raw_seq = 0 AND NOT EXISTS (SELECT 1 FROM files WHERE table_id = ?1) "
                          "AND NOT EXISTS (SELECT 1 FROM schema_versions WHERE table_id = ?1) "
                          "AND NOT EXISTS (SELECT 1 FROM partitions WHERE table_id = ?1)",
                          "i", table_id);
    if (!rc)
        rc = catalog_exec(c, "drop new database", eb,
                          "DELETE FROM databases WHERE name = ?1 "
                          "AND NOT EXISTS (SELECT 1 FROM tables WHERE db_id = databases.id)",
                          "t", db);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    return rc;
}

int tarn_catalog_get_table(tarn_catalog *c, const char *db, const char *table, tarn_table_info *out,
                           tarn_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    if (!db || !table) return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: no database or table name");
    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN", eb);
    if (!rc) rc = catalog_read_table(c, db, table, out, eb);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    if (rc) tarn_table_info_free(out);
    return rc;
}

int tarn_catalog_list_tables(tarn_catalog *c, tarn_table_info **out, size_t *n, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    tarn_table_info *tables = NULL;
    size_t ntables = 0, cap = 0;
    int row = 0;

    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN", eb);
    if (!rc) rc = catalog_prepare(c, &st, "list tables", eb, CATALOG_TABLE_SELECT "ORDER BY d.name, t.name", "");
    while (!rc && !(rc = catalog_step(c, st, &row, "list tables", eb)) && row) {
        if (ntables == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            tarn_table_info *p = realloc(tables, ncap * sizeof *p);
            if (!p) {
                rc = tarn_errbuf_set(eb, TARN_ENOMEM, "catalog: out of memory");
                break;
            }
            tables = p;
            cap = ncap;
        }
        memset(&tables[ntables], 0, sizeof tables[ntables]);
        rc = catalog_read_table_row(c, st, &tables[ntables++], eb);
    }
    sqlite3_finalize(st);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    if (rc) {
        tarn_table_infos_free(tables, ntables);
        tables = NULL;
        ntables = 0;
    }
    *out = tables;
    *n = ntables;
    return rc;
}

/* Publishes files of one zone and advances that zone's checkpoint (see
 * tarn_catalog_publish and tarn_catalog_publish_raw). */
static int catalog_publish(tarn_catalog *c, int64_t table_id, int raw, const tarn_column *columns, size_t ncolumns,
                           const tarn_file *files, size_t nfiles, int64_t seq, tarn_errbuf *eb)
{
    int64_t version = 0, delivered = 0, raw_seq = 0, now = tarn_now_ms();
    int rc = catalog_check_columns(columns, ncolumns, eb);
    for (size_t i = 0; !rc && i < nfiles; i++) {
        rc = catalog_check_file(&files[i], eb);
        if (!rc && raw && strcmp(files[i].zone, "raw") != 0)
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "catalog: file %s is not of the raw zone", files[i].path);
    }
    if (rc) return rc;

    catalog_lock(c);
    if ((rc = catalog_begin(c, "BEGIN IMMEDIATE", eb))) goto out;
    if ((rc = catalog_table_state(c, table_id, &version, &delivered, &raw_seq, eb))) goto out;
    int64_t current = raw ? raw_seq : delivered;
    if (seq <= current) {
        rc = tarn_errbuf_set(eb, TARN_ECONFLICT,
                             "catalog: table id %" PRId64 ": %s %" PRId64 " is not past the published %" PRId64,
                             table_id, raw ? "raw_seq" : "delivered_seq", seq, current);
        goto out;
    }
    if (raw && seq > delivered) {
        rc = tarn_errbuf_set(eb, TARN_ECONFLICT,
                             "catalog: table id %" PRId64 ": raw_seq %" PRId64 " would pass delivered_seq %" PRId64,
                             table_id, seq, delivered);
        goto out;
    }
    if (ncolumns > 0 && (rc = catalog_put_schema(c, table_id, columns, ncolumns, now, &version, eb))) goto out;
    for (size_t i = 0; i < nfiles; i++)
        if ((rc = catalog_put_file(c, table_id, &files[i], version, now, eb))) goto out;
    rc = catalog_exec(c, "advance checkpoint", eb,
                      raw ? "UPDATE tables SET raw_seq = ?2, updated_ms = ?3 WHERE id = ?1"
                          : "UPDATE tables SET delivered_seq = ?2, updated_ms = ?3 WHERE id = ?1",
                      "iii", table_id, seq, now);
out:
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    return rc;
}

int tarn_catalog_publish(tarn_catalog *c, int64_t table_id, const tarn_column *columns, size_t ncolumns,
                         const tarn_file *files, size_t nfiles, int64_t delivered_seq, tarn_errbuf *eb)
{
    return catalog_publish(c, table_id, 0, columns, ncolumns, files, nfiles, delivered_seq, eb);
}

int tarn_catalog_publish_raw(tarn_catalog *c, int64_t table_id, const tarn_file *files, size_t nfiles, int64_t raw_seq,
                             tarn_errbuf *eb)
{
    return catalog_publish(c, table_id, 1, NULL, 0, files, nfiles, raw_seq, eb);
}

int tarn_catalog_live_files(tarn_catalog *c, int64_t table_id, const char *zone, tarn_file **out, size_t *n,
                            tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int64_t version, seq;
    *out = NULL;
    *n = 0;
    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN", eb);
    if (!rc) rc = catalog_table_state(c, table_id, &version, &seq, NULL, eb);
    if (!rc)
        rc = catalog_prepare(c, &st, "read live files", eb,
                             CATALOG_FILE_SELECT "WHERE f.table_id = ?1 AND f.state = 'live' "
                                                 "AND (?2 IS NULL OR f.zone = ?2) ORDER BY f.path",
                             "it", table_id, zone);
    if (!rc) rc = catalog_read_files(c, st, out, n, eb);
    sqlite3_finalize(st);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    if (rc) {
        tarn_files_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int tarn_catalog_replace_files(tarn_catalog *c, int64_t table_id, const char *const *old_paths, size_t nold,
                               const tarn_file *new_file, tarn_errbuf *eb)
{
    int64_t version = 0, seq = 0, now = tarn_now_ms();
    int rc = new_file ? catalog_check_file(new_file, eb) : TARN_OK;
    if (rc) return rc;

    catalog_lock(c);
    if ((rc = catalog_begin(c, "BEGIN IMMEDIATE", eb))) goto out;
    if ((rc = catalog_table_state(c, table_id, &version, &seq, NULL, eb))) goto out;
    for (size_t i = 0; i < nold; i++) {
        if (!old_paths[i]) {
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "catalog: old path %zu is NULL", i);
            goto out;
        }
        rc = catalog_exec(c, "retire file", eb,
                          "UPDATE files SET state = 'retired', retired_ms = ?3 "
                          "WHERE path = ?2 AND table_id = ?1 AND state = 'live'",
                          "iti", table_id, old_paths[i], now);
        if (rc) goto out;
        if (sqlite3_changes(c->db) == 0) {
            rc = tarn_errbuf_set(eb, TARN_ECONFLICT, "catalog: file %s is not live in table id %" PRId64,
                                 old_paths[i], table_id);
            goto out;
        }
    }
    if (new_file &&
        (rc = catalog_put_file(c, table_id, new_file, new_file->schema_version > 0 ? new_file->schema_version : version,
                               now, eb)))
        goto out;
    rc = catalog_exec(c, "touch table", eb, "UPDATE tables SET updated_ms = ?2 WHERE id = ?1", "ii", table_id, now);
out:
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    return rc;
}

int tarn_catalog_retired_before(tarn_catalog *c, int64_t before_ms, tarn_file **out, size_t *n, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    catalog_lock(c);
    int rc = catalog_prepare(c, &st, "read retired files", eb,
                             CATALOG_FILE_SELECT "WHERE f.state = 'retired' AND f.retired_ms < ?1 "
                                                 "ORDER BY f.retired_ms, f.path",
                             "i", before_ms);
    if (!rc) rc = catalog_read_files(c, st, out, n, eb);
    sqlite3_finalize(st);
    catalog_unlock(c);
    return rc;
}

int tarn_catalog_forget_file(tarn_catalog *c, const char *path, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    if (!path) return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: no path to forget");
    catalog_lock(c);
    int rc = catalog_exec(c, "forget file", eb, "DELETE FROM files WHERE path = ?1 AND state = 'retired'", "t", path);
    if (!rc && sqlite3_changes(c->db) == 0) {
        /* Nothing deleted: say whether the path is unknown or still live. */
        rc = catalog_prepare(c, &st, "forget file", eb, "SELECT state FROM files WHERE path = ?1", "t", path);
        if (!rc) rc = catalog_step(c, st, &row, "forget file", eb);
        if (!rc)
            rc = row ? tarn_errbuf_set(eb, TARN_ECONFLICT, "catalog: file %s is live, not retired", path)
                     : tarn_errbuf_set(eb, TARN_ENOTFOUND, "catalog: file %s not found", path);
        sqlite3_finalize(st);
    }
    catalog_unlock(c);
    return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

/* A JSON writer with a sticky error, so the renderers read as the shapes
 * they produce and check once at the end. */
typedef struct catalog_json {
    tarn_buf *b;
    int rc;
} catalog_json;

static void cj_raw(catalog_json *j, const char *s)
{
    if (!j->rc) j->rc = tarn_buf_append_str(j->b, s);
}

static void cj_str(catalog_json *j, const char *s)
{
    if (!s) s = "";
    if (!j->rc) j->rc = tarn_buf_append_json_str(j->b, s, strlen(s));
}

/* A text column as a JSON string (NUL bytes included). */
static void cj_col_str(catalog_json *j, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!s) {
        if (sqlite3_column_type(st, col) != SQLITE_NULL && !j->rc) j->rc = TARN_ENOMEM;
        s = "";
        n = 0;
    }
    if (!j->rc) j->rc = tarn_buf_append_json_str(j->b, s, n);
}

static void cj_int(catalog_json *j, int64_t v)
{
    if (!j->rc) j->rc = tarn_buf_printf(j->b, "%" PRId64, v);
}

static void cj_time(catalog_json *j, int64_t ms)
{
    char t[32];
    tarn_format_iso8601(ms * 1000, t);
    cj_str(j, t);
}

/* The code for a renderer: SQL failures first, then the writer's. Every
 * renderer leaves out as it found it when it fails. */
static int cj_finish(catalog_json *j, int rc, size_t mark, tarn_errbuf *eb)
{
    if (!rc && j->rc) rc = tarn_errbuf_set(eb, j->rc, "catalog: JSON reply: %s", tarn_err_message(j->rc));
    if (rc && j->b->data) {
        j->b->len = mark;
        j->b->data[mark] = '\0';
    }
    return rc;
}

int tarn_catalog_databases_json(tarn_catalog *c, tarn_buf *out, tarn_errbuf *eb)
{
    catalog_json j = {out, TARN_OK};
    sqlite3_stmt *st = NULL;
    size_t mark = out->len;
    int row = 0, first = 1;

    catalog_lock(c);
    int rc = catalog_prepare(c, &st, "list databases", eb,
                             "SELECT d.name, d.created_ms, (SELECT count(*) FROM tables t WHERE t.db_id = d.id) "
                             "FROM databases d ORDER BY d.name",
                             "");
    cj_raw(&j, "{\"databases\":[");
    while (!rc && !(rc = catalog_step(c, st, &row, "list databases", eb)) && row) {
        cj_raw(&j, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        cj_col_str(&j, st, 0);
        cj_raw(&j, ",\"tables\":");
        cj_int(&j, sqlite3_column_int64(st, 2));
        cj_raw(&j, ",\"created\":");
        cj_time(&j, sqlite3_column_int64(st, 1));
        cj_raw(&j, "}");
    }
    cj_raw(&j, "]}");
    sqlite3_finalize(st);
    catalog_unlock(c);
    return cj_finish(&j, rc, mark, eb);
}

int tarn_catalog_tables_json(tarn_catalog *c, const char *db, tarn_buf *out, tarn_errbuf *eb)
{
    catalog_json j = {out, TARN_OK};
    sqlite3_stmt *st = NULL;
    size_t mark = out->len;
    int row = 0, first = 1;

    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN", eb);
    if (!rc && db) {
        rc = catalog_prepare(c, &st, "read database", eb, "SELECT 1 FROM databases WHERE name = ?1", "t", db);
        if (!rc) rc = catalog_step(c, st, &row, "read database", eb);
        if (!rc && !row) rc = tarn_errbuf_set(eb, TARN_ENOTFOUND, "database %s not found", db);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (!rc)
        rc = catalog_prepare(c, &st, "list tables", eb,
                             "SELECT d.name, t.name, "
                             "(SELECT count(*) FROM columns c WHERE c.table_id = t.id AND c.version = t.schema_version), "
                             "count(f.id), coalesce(sum(f.rows), 0), coalesce(sum(f.bytes), 0), t.delivered_seq, "
                             "t.raw_seq "
                             "FROM tables t JOIN databases d ON d.id = t.db_id "
                             "LEFT JOIN files f ON f.table_id = t.id AND f.state = 'live' AND f.zone = 'processed' "
                             "WHERE ?1 IS NULL OR d.name = ?1 "
                             "GROUP BY t.id ORDER BY d.name, t.name",
                             "t", db);
    cj_raw(&j, "{\"tables\":[");
    while (!rc && !(rc = catalog_step(c, st, &row, "list tables", eb)) && row) {
        cj_raw(&j, first ? "{\"database\":" : ",{\"database\":");
        first = 0;
        cj_col_str(&j, st, 0);
        cj_raw(&j, ",\"name\":");
        cj_col_str(&j, st, 1);
        cj_raw(&j, ",\"columns\":");
        cj_int(&j, sqlite3_column_int64(st, 2));
        cj_raw(&j, ",\"files\":");
        cj_int(&j, sqlite3_column_int64(st, 3));
        cj_raw(&j, ",\"rows\":");
        cj_int(&j, sqlite3_column_int64(st, 4));
        cj_raw(&j, ",\"bytes\":");
        cj_int(&j, sqlite3_column_int64(st, 5));
        cj_raw(&j, ",\"delivered_seq\":");
        cj_int(&j, sqlite3_column_int64(st, 6));
        cj_raw(&j, ",\"raw_seq\":");
        cj_int(&j, sqlite3_column_int64(st, 7));
        cj_raw(&j, "}");
    }
    cj_raw(&j, "]}");
    sqlite3_finalize(st);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    return cj_finish(&j, rc, mark, eb);
}

static void cj_columns(catalog_json *j, const tarn_column *cols, size_t n)
{
    cj_raw(j, "[");
    for (size_t i = 0; i < n; i++) {
        cj_raw(j, i ? ",{\"name\":" : "{\"name\":");
        cj_str(j, cols[i].name);
        cj_raw(j, ",\"type\":");
        cj_str(j, cols[i].type);
        cj_raw(j, "}");
    }
    cj_raw(j, "]");
}

/* The "partitions" array: partitions holding live files, with the totals of
 * their live processed files. */
static int catalog_json_partitions(tarn_catalog *c, catalog_json *j, int64_t table_id, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0, first = 1;
    int rc = catalog_prepare(c, &st, "read partitions", eb,
                             "SELECT p.name, p.values_json, sum(f.zone = 'processed'), "
                             "sum(CASE WHEN f.zone = 'processed' THEN f.rows ELSE 0 END), "
                             "sum(CASE WHEN f.zone = 'processed' THEN f.bytes ELSE 0 END) "
                             "FROM partitions p JOIN files f ON f.partition_id = p.id AND f.state = 'live' "
                             "WHERE p.table_id = ?1 GROUP BY p.id ORDER BY p.name",
                             "i", table_id);
    cj_raw(j, "[");
    while (!rc && !(rc = catalog_step(c, st, &row, "read partitions", eb)) && row) {
        cj_raw(j, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        cj_col_str(j, st, 0);
        cj_raw(j, ",\"values\":");
        /* values_json was built by catalog_partition_values: valid JSON. */
        const char *values = (const char *)sqlite3_column_text(st, 1);
        cj_raw(j, values && values[0] == '{' ? values : "{}");
        cj_raw(j, ",\"files\":");
        cj_int(j, sqlite3_column_int64(st, 2));
        cj_raw(j, ",\"rows\":");
        cj_int(j, sqlite3_column_int64(st, 3));
        cj_raw(j, ",\"bytes\":");
        cj_int(j, sqlite3_column_int64(st, 4));
        cj_raw(j, "}");
    }
    cj_raw(j, "]");
    sqlite3_finalize(st);
    return rc;
}

/* The "schema_versions" array, oldest first, each with its full column list. */
static int catalog_json_versions(tarn_catalog *c, catalog_json *j, int64_t table_id, tarn_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    int64_t open_version = 0; /* the version whose object is open, 0 for none */
    int column_first = 1;
    int rc = catalog_prepare(c, &st, "read schema versions", eb,
                             "SELECT v.version, v.created_ms, c.name, c.type FROM schema_versions v "
                             "LEFT JOIN columns c ON c.table_id = v.table_id AND c.version = v.version "
                             "WHERE v.table_id = ?1 ORDER BY v.version, c.ordinal",
                             "i", table_id);
    cj_raw(j, "[");
    while (!rc && !(rc = catalog_step(c, st, &row, "read schema versions", eb)) && row) {
        int64_t version = sqlite3_column_int64(st, 0);
        if (version != open_version) {
            cj_raw(j, open_version ? "]},{\"version\":" : "{\"version\":");
            cj_int(j, version);
            cj_raw(j, ",\"created\":");
            cj_time(j, sqlite3_column_int64(st, 1));
            cj_raw(j, ",\"columns\":[");
            open_version = version;
            column_first = 1;
        }
        if (sqlite3_column_type(st, 2) == SQLITE_NULL) continue; /* a version without columns */
        cj_raw(j, column_first ? "{\"name\":" : ",{\"name\":");
        column_first = 0;
        cj_col_str(j, st, 2);
        cj_raw(j, ",\"type\":");
        cj_col_str(j, st, 3);
        cj_raw(j, "}");
    }
    cj_raw(j, open_version ? "]}]" : "]");
    sqlite3_finalize(st);
    return rc;
}

int tarn_catalog_table_json(tarn_catalog *c, const char *db, const char *table, tarn_buf *out, tarn_errbuf *eb)
{
    catalog_json j = {out, TARN_OK};
    tarn_table_info t;
    sqlite3_stmt *st = NULL;
    size_t mark = out->len;
    int row = 0;

    memset(&t, 0, sizeof t);
    if (!db || !table) return tarn_errbuf_set(eb, TARN_EINVAL, "catalog: no database or table name");
    catalog_lock(c);
    int rc = catalog_begin(c, "BEGIN", eb);
    if (!rc) rc = catalog_read_table(c, db, table, &t, eb);
    if (!rc)
        rc = catalog_prepare(c, &st, "read table totals", eb,
                             "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0) FROM files "
                             "WHERE table_id = ?1 AND state = 'live' AND zone = 'processed'",
                             "i", t.id);
    if (!rc) rc = catalog_step(c, st, &row, "read table totals", eb);
    if (rc) goto out;

    cj_raw(&j, "{\"database\":");
    cj_str(&j, t.db);
    cj_raw(&j, ",\"name\":");
    cj_str(&j, t.name);
    cj_raw(&j, ",\"schema_version\":");
    cj_int(&j, t.schema_version);
    cj_raw(&j, ",\"delivered_seq\":");
    cj_int(&j, t.delivered_seq);
    cj_raw(&j, ",\"raw_seq\":");
    cj_int(&j, t.raw_seq);
    cj_raw(&j, ",\"files\":");
    cj_int(&j, row ? sqlite3_column_int64(st, 0) : 0);
    cj_raw(&j, ",\"rows\":");
    cj_int(&j, row ? sqlite3_column_int64(st, 1) : 0);
    cj_raw(&j, ",\"bytes\":");
    cj_int(&j, row ? sqlite3_column_int64(st, 2) : 0);
    cj_raw(&j, ",\"columns\":");
    cj_columns(&j, t.columns, t.ncolumns);
    cj_raw(&j, ",\"partitions\":");
    if ((rc = catalog_json_partitions(c, &j, t.id, eb))) goto out;
    cj_raw(&j, ",\"schema_versions\":");
    if ((rc = catalog_json_versions(c, &j, t.id, eb))) goto out;
    cj_raw(&j, ",\"created\":");
    cj_time(&j, t.created_ms);
    cj_raw(&j, ",\"updated\":");
    cj_time(&j, t.updated_ms);
    cj_raw(&j, "}");
out:
    sqlite3_finalize(st);
    rc = catalog_end(c, rc, eb);
    catalog_unlock(c);
    tarn_table_info_free(&t);
    return cj_finish(&j, rc, mark, eb);
}
