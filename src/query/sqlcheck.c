/* sqlcheck.c - see sqlcheck.h.
 *
 * The AST comes from DuckDB's json_serialize_sql. Its shape, as DuckDB 1.5
 * writes it (measured, not documented upstream):
 *
 *   {"error":false,"statements":[{"node":<query node>,"named_param_map":[]}]}
 *   {"error":true,"error_type":"parser"|"not implemented",...,"error_message":"..."}
 *
 *   query node   {"type":"SELECT_NODE"|"SET_OPERATION_NODE"|"RECURSIVE_CTE_NODE",
 *                 "cte_map":{"map":[{"key":name,"value":{"query":{"node":...},...}}]},
 *                 "from_table":<table ref>, "left"/"right":<query node>,
 *                 "modifiers":[{"type":"ORDER_MODIFIER",...}, {"type":"DISTINCT_MODIFIER",...},
 *                              {"type":"LIMIT_MODIFIER"|"LIMIT_PERCENT_MODIFIER",
 *                               "limit":<expression>|null, "offset":<expression>|null}], ...}
 *   table ref    {"type":"BASE_TABLE","catalog_name","schema_name","table_name",...}
 *                {"type":"TABLE_FUNCTION","function":{"function_name":...}}
 *                {"type":"JOIN","left":<ref>,"right":<ref>,...}
 *                {"type":"SUBQUERY","subquery":{"node":...}}
 *                {"type":"EXPRESSION_LIST"} (VALUES), {"type":"EMPTY"} (no FROM),
 *                {"type":"PIVOT","source":<ref>}, {"type":"SHOW_REF"} (DESCRIBE, SHOW: refused)
 *   expression   {"class":"...","type":"...",...}; a subquery expression holds
 *                {"subquery":{"node":...}}
 *
 * The walk visits every object and array, so a table function or a path
 * hidden in a subquery, a CTE, a join, a LIMIT or a lambda is found too.
 * Objects with a "class" are expressions; other objects with a string "type"
 * are query nodes, table refs, modifiers or type infos. Unknown query node
 * types and table refs of an unknown type (in the places a table ref goes)
 * are refused rather than walked past, so a DuckDB upgrade that adds a
 * construct fails closed.
 *
 * CTE scoping follows what DuckDB 1.5 was measured to do, and errs on the
 * side of "not a CTE" (then the name must be a catalog table):
 *   - a CTE is visible in the body of its query node, in subqueries inside
 *     it, and in the CTEs defined after it in the same WITH;
 *   - not in itself or in earlier CTEs (a non-recursive `WITH x AS (SELECT *
 *     FROM x)` reads the *table* x);
 *   - a recursive CTE sees itself only in the recursive (right) side of its
 *     UNION; in the left side the name is a table again.
 * Getting this wrong in the permissive direction would let a name the checker
 * took for a CTE reach DuckDB's search path (system views, other schemas).
 */
#include "sqlcheck.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* Deeper ASTs are refused; jansson itself stops at 2048 levels. */
#define SQLCHECK_MAX_DEPTH 1500
/* Integers up to here are exact as doubles (2^53): LIMITs and row caps. */
#define SQLCHECK_MAX_EXACT 9007199254740992LL

typedef struct sqlcheck_scope {
    const char *name; /* a CTE name visible here */
    const struct sqlcheck_scope *up;
} sqlcheck_scope;

typedef struct sqlcheck_ctx {
    const char *default_db;
    tarn_sqlcheck_resolve_fn resolve;
    void *resolve_ctx;
    tarn_errbuf *eb;
    int depth;
} sqlcheck_ctx;

static int sqlcheck_walk(sqlcheck_ctx *c, json_t *v, const sqlcheck_scope *sc);

int tarn_sqlcheck_ident_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
    }
}

int tarn_sqlcheck_reserved_db(const char *name)
{
    static const char *const reserved[] = {"memory", "system", "temp", "pg_catalog", "information_schema"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (tarn_sqlcheck_ident_eq(name, reserved[i])) return 1;
    return 0;
}

/* ---- running json_serialize_sql ---------------------------------------- */

/* Parses text with DuckDB (no binding: no catalog lookup, no file opened)
 * and returns the AST as a jansson tree owned by the caller. If also is not
 * NULL it is parsed in the same call (one more statement costs far more
 * than one more parse) and *also_json gets its JSON text, malloc'd, owned
 * by the caller (NULL if that failed). The texts are bound parameters,
 * never spliced into SQL. */
static int sqlcheck_serialize(duckdb_connection conn, duckdb_prepared_statement *cache, const char *text,
                              const char *also, json_t **out, char **also_json, tarn_errbuf *eb)
{
    duckdb_prepared_statement ps = cache ? *cache : NULL;
    duckdb_result res;
    duckdb_data_chunk chunk = NULL;
    int have_res = 0, rc = TARN_OK;
    *out = NULL;
    if (also_json) *also_json = NULL;
    if (!ps && duckdb_prepare(conn, "SELECT json_serialize_sql($1::VARCHAR), json_serialize_sql($2::VARCHAR)",
                              &ps) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "json_serialize_sql: %s", duckdb_prepare_error(ps));
        duckdb_destroy_prepare(&ps);
        goto done;
    }
    if (cache) *cache = ps;
    if (duckdb_bind_varchar(ps, 1, text) != DuckDBSuccess ||
        (also ? duckdb_bind_varchar(ps, 2, also) : duckdb_bind_null(ps, 2)) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "json_serialize_sql: cannot bind the statement text");
        goto done;
    }
    have_res = 1;
    if (duckdb_execute_prepared(ps, &res) != DuckDBSuccess) {
        const char *m = duckdb_result_error(&res);
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "json_serialize_sql: %s", m ? m : "failed");
        goto done;
    }
    chunk = duckdb_fetch_chunk(res);
    if (!chunk || duckdb_data_chunk_get_size(chunk) != 1) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "json_serialize_sql returned no row");
        goto done;
    }
    duckdb_vector vec = duckdb_data_chunk_get_vector(chunk, 0);
    uint64_t *validity = duckdb_vector_get_validity(vec);
    if (validity && !duckdb_validity_row_is_valid(validity, 0)) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "json_serialize_sql returned NULL");
        goto done;
    }
    duckdb_string_t *s = (duckdb_string_t *)duckdb_vector_get_data(vec);
    json_error_t jerr;
    *out = json_loadb(duckdb_string_t_data(&s[0]), duckdb_string_t_length(s[0]), JSON_DECODE_INT_AS_REAL, &jerr);
    if (!*out) {
        /* The JSON is DuckDB's own; the only way it fails to load is depth. */
        rc = strstr(jerr.text, "depth") ? tarn_errbuf_set(eb, TARN_ETOOBIG, "statement is nested too deeply")
                                        : tarn_errbuf_set(eb, TARN_EINTERNAL, "parse tree: %s", jerr.text);
        goto done;
    }
    vec = duckdb_data_chunk_get_vector(chunk, 1);
    validity = duckdb_vector_get_validity(vec);
    if (also && also_json && (!validity || duckdb_validity_row_is_valid(validity, 0))) {
        s = (duckdb_string_t *)duckdb_vector_get_data(vec);
        uint32_t n = duckdb_string_t_length(s[0]);
        if ((*also_json = malloc((size_t)n + 1)) != NULL) {
            memcpy(*also_json, duckdb_string_t_data(&s[0]), n);
            (*also_json)[n] = '\0';
        }
    }
done:
    if (chunk) duckdb_destroy_data_chunk(&chunk);
    if (have_res) duckdb_destroy_result(&res);
    if (!cache) duckdb_destroy_prepare(&ps);
    return rc;
}

/* Turns an {"error":true,...} answer into our code: syntax errors are the
 * user's SQL error; "Only SELECT statements can be serialized" (and anything
 * else the serializer refuses) means the statement is not a plain SELECT. */
static int sqlcheck_parse_error(json_t *root, tarn_errbuf *eb)
{
    const char *type = json_string_value(json_object_get(root, "error_type"));
    const char *msg = json_string_value(json_object_get(root, "error_message"));
    if (type && strcmp(type, "parser") == 0) return tarn_errbuf_set(eb, TARN_ESQL, "%s", msg ? msg : "syntax error");
    if (msg && strstr(msg, "Only SELECT statements")) return tarn_errbuf_set(eb, TARN_EDENIED, "only SELECT statements are allowed");
    return tarn_errbuf_set(eb, TARN_EDENIED, "statement not allowed: %s", msg ? msg : "cannot be checked");
}

/* ---- the walk ------------------------------------------------------------ */

/* The "type" of a query node / table ref / modifier; NULL for expressions
 * (they carry a "class") and for everything without a string type. */
static const char *sqlcheck_kind(json_t *obj)
{
    if (json_object_get(obj, "class")) return NULL;
    return json_string_value(json_object_get(obj, "type"));
}

static int sqlcheck_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Table ref types that may stand where a table ref goes. TABLE_FUNCTION is
 * listed so the walk reaches it and refuses it with its own message. */
static int sqlcheck_tableref_known(const char *kind)
{
    static const char *const ok[] = {"BASE_TABLE", "JOIN", "SUBQUERY", "EXPRESSION_LIST",
                                     "EMPTY", "PIVOT", "SHOW_REF", "TABLE_FUNCTION"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(kind, ok[i]) == 0) return 1;
    return 0;
}

/* Table ref types DuckDB has but user SQL must never produce. */
static int sqlcheck_tableref_forbidden(const char *kind)
{
    static const char *const bad[] = {"COLUMN_DATA", "DELIM_GET", "BOUND_TABLE_REF", "CTE", "INVALID"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strcmp(kind, bad[i]) == 0) return 1;
    return 0;
}

/* Whether key of an object of kind holds a table ref. */
static int sqlcheck_tableref_slot(const char *kind, const char *key)
{
    if (strcmp(key, "from_table") == 0) return 1;
    if (!kind) return 0;
    if (strcmp(kind, "JOIN") == 0) return strcmp(key, "left") == 0 || strcmp(key, "right") == 0;
    if (strcmp(kind, "PIVOT") == 0) return strcmp(key, "source") == 0;
    return 0;
}

static int sqlcheck_in_scope(const sqlcheck_scope *sc, const char *name)
{
    for (; sc; sc = sc->up)
        if (tarn_sqlcheck_ident_eq(sc->name, name)) return 1;
    return 0;
}

/* Something DuckDB would take for a file (replacement scan) rather than a
 * table: 'data.csv', '/etc/passwd', 's3://b/k', 'C:\x'. Catalog names are
 * [A-Za-z0-9_] and never look like this. */
static int sqlcheck_looks_like_path(const char *s)
{
    return strpbrk(s, "/\\.:") != NULL;
}

static int sqlcheck_base_table(sqlcheck_ctx *c, json_t *ref, const sqlcheck_scope *sc)
{
    const char *catalog = json_string_value(json_object_get(ref, "catalog_name"));
    const char *schema = json_string_value(json_object_get(ref, "schema_name"));
    const char *table = json_string_value(json_object_get(ref, "table_name"));
    if (!catalog || !schema || !table) return tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported table reference");
    if (sqlcheck_looks_like_path(table) || sqlcheck_looks_like_path(schema) || sqlcheck_looks_like_path(catalog))
        return tarn_errbuf_set(c->eb, TARN_EDENIED, "file paths are not allowed: '%s'", table);
    /* "memory" is the in-memory database holding the views; any other
     * catalog (system, temp) holds DuckDB's internals. */
    if (*catalog && !tarn_sqlcheck_ident_eq(catalog, "memory"))
        return tarn_errbuf_set(c->eb, TARN_ENOTFOUND, "table '%s.%s.%s' not found", catalog, schema, table);
    if (!*schema) {
        if (!*catalog && sqlcheck_in_scope(sc, table)) return TARN_OK;
        if (c->default_db && c->resolve(c->resolve_ctx, c->default_db, table)) return TARN_OK;
        return tarn_errbuf_set(c->eb, TARN_ENOTFOUND, "table '%s' not found", table);
    }
    if (tarn_sqlcheck_reserved_db(schema) || !c->resolve(c->resolve_ctx, schema, table))
        return tarn_errbuf_set(c->eb, TARN_ENOTFOUND, "table '%s.%s' not found", schema, table);
    return TARN_OK;
}

/* Walks every member of obj (of kind, may be NULL) except skip, checking
 * that table-ref slots hold a known kind of table ref. */
static int sqlcheck_members(sqlcheck_ctx *c, json_t *obj, const char *kind, const char *skip,
                            const sqlcheck_scope *sc)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (skip && strcmp(key, skip) == 0) continue;
        if (sqlcheck_tableref_slot(kind, key) && !json_is_null(val)) {
            const char *k = json_is_object(val) ? sqlcheck_kind(val) : NULL;
            if (!k || !sqlcheck_tableref_known(k))
                return tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported table reference '%s'", k ? k : "?");
        }
        int rc = sqlcheck_walk(c, val, sc);
        if (rc) return rc;
    }
    return TARN_OK;
}

static int sqlcheck_node(sqlcheck_ctx *c, json_t *node, const char *kind, const sqlcheck_scope *sc)
{
    int recursive = strcmp(kind, "RECURSIVE_CTE_NODE") == 0;
    if (!recursive && strcmp(kind, "SELECT_NODE") != 0 && strcmp(kind, "SET_OPERATION_NODE") != 0)
        return tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported query form '%s'", kind);

    json_t *map = json_object_get(json_object_get(node, "cte_map"), "map");
    size_t ncte = json_is_array(map) ? json_array_size(map) : 0;
    if (json_object_get(node, "cte_map") && !json_is_array(map))
        return tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported WITH clause");
    sqlcheck_scope *frames = ncte ? calloc(ncte, sizeof *frames) : NULL;
    if (ncte && !frames) return tarn_errbuf_set(c->eb, TARN_ENOMEM, "out of memory");

    int rc = TARN_OK;
    const sqlcheck_scope *inner = sc;
    for (size_t i = 0; i < ncte && !rc; i++) {
        json_t *entry = json_array_get(map, i);
        const char *name = json_string_value(json_object_get(entry, "key"));
        if (!name) {
            rc = tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported WITH clause");
            break;
        }
        /* CTE i sees the CTEs before it, not itself. */
        rc = sqlcheck_walk(c, json_object_get(entry, "value"), inner);
        frames[i].name = name;
        frames[i].up = inner;
        inner = &frames[i];
    }
    if (!rc && recursive) {
        /* The recursive side sees the CTE being defined; the base side not. */
        const char *self = json_string_value(json_object_get(node, "cte_name"));
        sqlcheck_scope me = {self ? self : "", inner};
        const char *key;
        json_t *val;
        json_object_foreach(node, key, val) {
            if (strcmp(key, "cte_map") == 0) continue;
            rc = sqlcheck_walk(c, val, strcmp(key, "right") == 0 && self ? &me : inner);
            if (rc) break;
        }
    } else if (!rc) {
        rc = sqlcheck_members(c, node, kind, "cte_map", inner);
    }
    free(frames);
    return rc;
}

static int sqlcheck_object(sqlcheck_ctx *c, json_t *obj, const sqlcheck_scope *sc)
{
    const char *kind = sqlcheck_kind(obj);
    if (kind) {
        if (sqlcheck_ends_with(kind, "_NODE")) return sqlcheck_node(c, obj, kind, sc);
        if (strcmp(kind, "TABLE_FUNCTION") == 0) {
            const char *fn = json_string_value(json_object_get(json_object_get(obj, "function"), "function_name"));
            return tarn_errbuf_set(c->eb, TARN_EDENIED, "table functions are not allowed: %s", fn ? fn : "?");
        }
        /* Any table ref kind not known here, wherever it appears. */
        /* DESCRIBE, SUMMARIZE and SHOW parse as a SELECT over a SHOW_REF:
         * the API takes one SELECT and nothing else, and the catalog API
         * describes tables. */
        if (strcmp(kind, "SHOW_REF") == 0)
            return tarn_errbuf_set(c->eb, TARN_EDENIED,
                                   "only SELECT statements are allowed (for DESCRIBE, SUMMARIZE or SHOW use "
                                   "GET /v1/tables/{database}/{table})");
        if (sqlcheck_tableref_forbidden(kind) || sqlcheck_ends_with(kind, "_REF"))
            return tarn_errbuf_set(c->eb, TARN_EDENIED, "unsupported table reference '%s'", kind);
        if (strcmp(kind, "BASE_TABLE") == 0) {
            int rc = sqlcheck_base_table(c, obj, sc);
            if (rc) return rc;
        }
    }
    return sqlcheck_members(c, obj, kind, NULL, sc);
}

static int sqlcheck_walk(sqlcheck_ctx *c, json_t *v, const sqlcheck_scope *sc)
{
    int rc = TARN_OK;
    if (!json_is_object(v) && !json_is_array(v)) return TARN_OK;
    if (++c->depth > SQLCHECK_MAX_DEPTH) {
        c->depth--;
        return tarn_errbuf_set(c->eb, TARN_ETOOBIG, "statement is nested too deeply");
    }
    if (json_is_object(v)) {
        rc = sqlcheck_object(c, v, sc);
    } else {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if ((rc = sqlcheck_walk(c, item, sc))) break;
        }
    }
    c->depth--;
    return rc;
}

/* ---- entry points -------------------------------------------------------- */

/* ---- bounding the result -------------------------------------------------- */

/* The row count of a LIMIT_MODIFIER whose limit is a plain integer
 * constant (LIMIT 10, FETCH FIRST 10 ROWS ONLY), else -1: a percentage, an
 * expression, NULL or ALL, an OFFSET alone. Numbers load as doubles
 * (JSON_DECODE_INT_AS_REAL): exact up to 2^53. */
static int64_t sqlcheck_const_limit(json_t *modifier)
{
    const char *kind = sqlcheck_kind(modifier);
    json_t *limit = json_object_get(modifier, "limit");
    const char *cls = json_string_value(json_object_get(limit, "class"));
    const char *type = json_string_value(json_object_get(limit, "type"));
    json_t *value = json_object_get(limit, "value");
    const char *id = json_string_value(json_object_get(json_object_get(value, "type"), "id"));
    json_t *num = json_object_get(value, "value");
    if (!kind || strcmp(kind, "LIMIT_MODIFIER") != 0 || !cls || strcmp(cls, "CONSTANT") != 0 || !type ||
        strcmp(type, "VALUE_CONSTANT") != 0 || !id || (strcmp(id, "INTEGER") != 0 && strcmp(id, "BIGINT") != 0) ||
        !json_is_false(json_object_get(value, "is_null")) || !json_is_number(num))
        return -1;
    double d = json_number_value(num);
    if (!(d >= 0 && d <= SQLCHECK_MAX_EXACT) || d != (double)(int64_t)d) return -1;
    return (int64_t)d;
}

/* Whether a top-level modifier may be a LIMIT (one of no known kind counts). */
static int sqlcheck_is_limit(json_t *modifier)
{
    const char *kind = sqlcheck_kind(modifier);
    return !kind || strcmp(kind, "LIMIT_MODIFIER") == 0 || strcmp(kind, "LIMIT_PERCENT_MODIFIER") == 0;
}

/* Whether capped (the tree of the capped text; changed here) is orig plus
 * one top-level `LIMIT want` and nothing else. */
static int sqlcheck_is_capped(json_t *capped, json_t *orig, int64_t want)
{
    json_t *stmts = json_object_get(capped, "statements");
    if (!json_is_false(json_object_get(capped, "error")) || !json_is_array(stmts) || json_array_size(stmts) != 1)
        return 0;
    json_t *mods = json_object_get(json_object_get(json_array_get(stmts, 0), "node"), "modifiers");
    size_t i, at = (size_t)-1;
    json_t *m;
    json_array_foreach(mods, i, m) {
        if (!sqlcheck_is_limit(m)) continue;
        if (at != (size_t)-1) return 0;
        at = i;
    }
    if (at == (size_t)-1) return 0;
    m = json_array_get(mods, at);
    if (json_object_size(m) != 3 || sqlcheck_const_limit(m) != want || !json_is_null(json_object_get(m, "offset")))
        return 0;
    json_array_remove(mods, at);
    return json_equal(capped, orig);
}

/* How to bound the result of the statement whose tree is root; capped_json
 * is the tree of the capped text as JSON (NULL: none). */
static enum tarn_sqlcheck_bound sqlcheck_bound(json_t *root, const char *capped_json, int64_t max_rows)
{
    json_t *node = json_object_get(json_array_get(json_object_get(root, "statements"), 0), "node");
    json_t *mods = json_object_get(node, "modifiers");
    if (!json_is_array(mods)) return TARN_SQLCHECK_UNBOUNDED;
    /* Every modifier (ORDER BY, DISTINCT, LIMIT) keeps or lowers the row
     * count, so one constant LIMIT within the cap bounds the result. */
    int limited = 0;
    size_t i;
    json_t *m;
    json_array_foreach(mods, i, m) {
        if (!sqlcheck_is_limit(m)) continue;
        int64_t n = sqlcheck_const_limit(m);
        if (n >= 0 && n <= max_rows) return TARN_SQLCHECK_OWN_LIMIT;
        limited = 1;
    }
    if (limited || !capped_json) return TARN_SQLCHECK_UNBOUNDED;
    json_t *capped = json_loads(capped_json, JSON_DECODE_INT_AS_REAL, NULL);
    int ok = capped && sqlcheck_is_capped(capped, root, max_rows + 1);
    json_decref(capped);
    return ok ? TARN_SQLCHECK_CAPPED : TARN_SQLCHECK_UNBOUNDED;
}

/* ---- entry points -------------------------------------------------------- */

int tarn_sqlcheck_statement(duckdb_connection conn, const char *sql, const char *default_db,
                            tarn_sqlcheck_resolve_fn resolve, void *ctx, tarn_errbuf *eb)
{
    return tarn_sqlcheck_statement_bounded(conn, NULL, sql, default_db, resolve, ctx, 0, NULL, NULL, eb);
}

int tarn_sqlcheck_statement_bounded(duckdb_connection conn, duckdb_prepared_statement *serializer, const char *sql,
                                    const char *default_db, tarn_sqlcheck_resolve_fn resolve, void *ctx,
                                    int64_t max_rows, tarn_buf *capped, enum tarn_sqlcheck_bound *how,
                                    tarn_errbuf *eb)
{
    if (how) *how = TARN_SQLCHECK_UNBOUNDED;
    /* One statement exactly: a second one would run unchecked by anything
     * that looks only at the first. */
    duckdb_extracted_statements ex = NULL;
    idx_t n = duckdb_extract_statements(conn, sql, &ex);
    int rc = TARN_OK;
    if (n == 0) {
        const char *m = ex ? duckdb_extract_statements_error(ex) : NULL;
        rc = m ? tarn_errbuf_set(eb, TARN_ESQL, "%s", m) : tarn_errbuf_set(eb, TARN_ESQL, "empty statement");
    } else if (n > 1) {
        rc = tarn_errbuf_set(eb, TARN_EDENIED, "only one statement is allowed");
    }
    duckdb_destroy_extracted(&ex);
    if (rc) return rc;

    /* The capped text, parsed along with sql; used only after the check. */
    int bounding = how && capped && max_rows > 0 && max_rows < SQLCHECK_MAX_EXACT;
    if (bounding) {
        size_t len = strlen(sql);
        while (len > 0 && strchr(" \t\n\r\f\v;", sql[len - 1])) len--;
        tarn_buf_reset(capped);
        bounding = tarn_buf_append(capped, sql, len) == TARN_OK &&
                   tarn_buf_printf(capped, "\nLIMIT %lld", (long long)max_rows + 1) == TARN_OK;
    }
    json_t *root = NULL;
    char *capped_json = NULL;
    if ((rc = sqlcheck_serialize(conn, serializer, sql, bounding ? capped->data : NULL, &root,
                                 bounding ? &capped_json : NULL, eb)))
        return rc;
    if (json_is_true(json_object_get(root, "error"))) {
        rc = sqlcheck_parse_error(root, eb);
    } else {
        json_t *stmts = json_object_get(root, "statements");
        if (!json_is_array(stmts) || json_array_size(stmts) != 1) {
            rc = tarn_errbuf_set(eb, TARN_EDENIED, "only one statement is allowed");
        } else {
            sqlcheck_ctx c = {default_db, resolve, ctx, eb, 0};
            json_t *node = json_object_get(json_array_get(stmts, 0), "node");
            if (!json_is_object(node) || !sqlcheck_kind(node))
                rc = tarn_errbuf_set(eb, TARN_EDENIED, "only SELECT statements are allowed");
            else
                rc = sqlcheck_walk(&c, json_array_get(stmts, 0), NULL);
        }
    }
    if (!rc && how && max_rows > 0) *how = sqlcheck_bound(root, capped_json, max_rows);
    free(capped_json);
    json_decref(root);
    return rc;
}

/* True if item is `CAST(NULL AS <type>)` and nothing more. */
static int sqlcheck_is_null_cast(json_t *item)
{
    const char *cls = json_string_value(json_object_get(item, "class"));
    json_t *child = json_object_get(item, "child");
    const char *ccls = json_string_value(json_object_get(child, "class"));
    return cls && strcmp(cls, "CAST") == 0 && !json_is_true(json_object_get(item, "try_cast")) && ccls &&
           strcmp(ccls, "CONSTANT") == 0 && json_is_true(json_object_get(json_object_get(child, "value"), "is_null"));
}

int tarn_sqlcheck_types(duckdb_connection conn, const char *const *types, size_t n, tarn_errbuf *eb)
{
    if (n == 0) return TARN_OK;
    tarn_buf sql;
    tarn_buf_init(&sql, 16 << 20);
    int rc = tarn_buf_append_str(&sql, "SELECT ");
    for (size_t i = 0; i < n && !rc; i++)
        rc = tarn_buf_printf(&sql, "%sCAST(NULL AS %s)", i ? ", " : "", types[i]);
    if (rc) {
        tarn_buf_free(&sql);
        return tarn_errbuf_set(eb, rc, "column types too long");
    }
    json_t *root = NULL;
    rc = sqlcheck_serialize(conn, NULL, sql.data, NULL, &root, NULL, eb);
    tarn_buf_free(&sql);
    if (rc) return rc;

    /* A clean parse has exactly one SELECT of n null casts, no FROM, no
     * clauses: any text that closes the CAST early and adds SQL shows up as
     * another item, a FROM, a WHERE, a comment swallowing the rest, ... */
    json_t *stmts = json_object_get(root, "statements");
    json_t *node = json_object_get(json_array_get(stmts, 0), "node");
    json_t *list = json_object_get(node, "select_list");
    const char *kind = json_string_value(json_object_get(node, "type"));
    const char *from = json_string_value(json_object_get(json_object_get(node, "from_table"), "type"));
    int ok = !json_is_true(json_object_get(root, "error")) && json_array_size(stmts) == 1 && kind &&
             strcmp(kind, "SELECT_NODE") == 0 && from && strcmp(from, "EMPTY") == 0 &&
             json_array_size(json_object_get(node, "modifiers")) == 0 &&
             json_array_size(json_object_get(json_object_get(node, "cte_map"), "map")) == 0 &&
             json_is_null(json_object_get(node, "where_clause")) && json_is_null(json_object_get(node, "having")) &&
             json_is_null(json_object_get(node, "qualify")) && json_is_null(json_object_get(node, "sample")) &&
             json_array_size(json_object_get(node, "group_expressions")) == 0 && json_array_size(list) == n;
    size_t bad = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (!sqlcheck_is_null_cast(json_array_get(list, i))) {
            ok = 0;
            bad = i;
        }
    }
    json_decref(root);
    if (ok) return TARN_OK;
    /* Find which type is at fault for the message, one at a time. */
    if (n > 1) {
        for (size_t i = 0; i < n; i++) {
            if (tarn_sqlcheck_types(conn, &types[i], 1, NULL) != TARN_OK) {
                bad = i;
                break;
            }
        }
    }
    return tarn_errbuf_set(eb, TARN_EINVAL, "not a column type: %.200s", types[bad]);
}
