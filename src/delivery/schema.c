/* schema.c - parsing, normalizing, merging and printing column types.
 * The rules are in schema.h. The parser reads the type text DuckDB prints
 * (DESCRIBE, typeof, the catalog): words, "quoted" identifiers, parentheses,
 * commas and the [] list suffix. */
#include "schema.h"

#include "common/duck.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCHEMA_MAX_DEPTH 128

typedef struct type_parser {
    const char *s;
    size_t pos;
    tarn_errbuf *eb;
    int depth;
    int json_null; /* JSON parses as TARN_T_NULL (tarn_type_parse_inferred) */
} type_parser;

static tarn_type *type_new(enum tarn_type_kind kind)
{
    tarn_type *t = calloc(1, sizeof *t);
    if (t) t->kind = kind;
    return t;
}

void tarn_type_free(tarn_type *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nchildren; i++) {
        tarn_type_free(t->children[i]);
        if (t->names) free(t->names[i]);
    }
    free(t->children);
    free(t->names);
    free(t);
}

static int type_add_child(tarn_type *t, const char *name, tarn_type *child)
{
    size_t n = t->nchildren + 1;
    tarn_type **c = realloc(t->children, n * sizeof *c);
    if (!c) return TARN_ENOMEM;
    t->children = c;
    if (t->kind == TARN_T_STRUCT) {
        char **nm = realloc(t->names, n * sizeof *nm);
        if (!nm) return TARN_ENOMEM;
        t->names = nm;
        nm[n - 1] = strdup(name ? name : "");
        if (!nm[n - 1]) return TARN_ENOMEM;
    }
    c[n - 1] = child;
    t->nchildren = n;
    return TARN_OK;
}

static void parser_ws(type_parser *p)
{
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n') p->pos++;
}

/* Reads an identifier: "quoted" (with "" for a quote) or a bare word.
 * Returns a malloc'd string or NULL. */
static char *parser_ident(type_parser *p)
{
    parser_ws(p);
    tarn_buf b;
    tarn_buf_init(&b, 4096);
    if (p->s[p->pos] == '"') {
        p->pos++;
        for (;;) {
            char c = p->s[p->pos];
            if (c == '\0') goto fail;
            if (c == '"') {
                if (p->s[p->pos + 1] == '"') {
                    if (tarn_buf_append_char(&b, '"')) goto fail;
                    p->pos += 2;
                    continue;
                }
                p->pos++;
                break;
            }
            if (tarn_buf_append_char(&b, c)) goto fail;
            p->pos++;
        }
    } else {
        size_t start = p->pos;
        while (p->s[p->pos] && (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_' ||
                                (unsigned char)p->s[p->pos] >= 0x80))
            p->pos++;
        if (p->pos == start) goto fail;
        if (tarn_buf_append(&b, p->s + start, p->pos - start)) goto fail;
    }
    return tarn_buf_steal(&b);
fail:
    tarn_buf_free(&b);
    return NULL;
}

/* Skips a balanced parenthesized group, e.g. DECIMAL's "(18,3)". */
static int parser_skip_parens(type_parser *p)
{
    int depth = 0;
    do {
        char c = p->s[p->pos];
        if (c == '\0') return -1;
        if (c == '(') depth++;
        if (c == ')') depth--;
        p->pos++;
    } while (depth > 0);
    return 0;
}

static tarn_type *parser_type(type_parser *p);

static enum tarn_type_kind scalar_kind(const char *word, int json_null)
{
    if (strcasecmp(word, "NULL") == 0 || (json_null && strcasecmp(word, "JSON") == 0)) return TARN_T_NULL;
    static const struct {
        const char *name;
        enum tarn_type_kind kind;
    } map[] = {
        {"BOOLEAN", TARN_T_BOOLEAN},     {"BOOL", TARN_T_BOOLEAN},        {"TINYINT", TARN_T_BIGINT},
        {"SMALLINT", TARN_T_BIGINT},     {"INTEGER", TARN_T_BIGINT},      {"INT", TARN_T_BIGINT},
        {"BIGINT", TARN_T_BIGINT},       {"UTINYINT", TARN_T_BIGINT},     {"USMALLINT", TARN_T_BIGINT},
        {"UINTEGER", TARN_T_BIGINT},     {"UBIGINT", TARN_T_HUGEINT},     {"HUGEINT", TARN_T_HUGEINT},
        {"UHUGEINT", TARN_T_HUGEINT},     {"FLOAT", TARN_T_DOUBLE},        {"REAL", TARN_T_DOUBLE},
        {"DOUBLE", TARN_T_DOUBLE},       {"DECIMAL", TARN_T_DOUBLE},      {"NUMERIC", TARN_T_DOUBLE},
        {"VARCHAR", TARN_T_VARCHAR},     {"DATE", TARN_T_DATE},           {"TIME", TARN_T_TIME},
        {"TIMESTAMP", TARN_T_TIMESTAMP}, {"TIMESTAMPTZ", TARN_T_TIMESTAMPTZ}, {"UUID", TARN_T_UUID},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(word, map[i].name) == 0) return map[i].kind;
    return TARN_T_VARCHAR; /* JSON, MAP, BLOB, INTERVAL, ...: stored as text */
}

static int parser_peek_word(type_parser *p, const char *word)
{
    parser_ws(p);
    size_t n = strlen(word);
    return strncasecmp(p->s + p->pos, word, n) == 0 && !isalnum((unsigned char)p->s[p->pos + n]);
}

static tarn_type *parser_base(type_parser *p)
{
    char *word = parser_ident(p);
    if (!word) {
        tarn_errbuf_set(p->eb, TARN_EINVAL, "expected a type at position %zu", p->pos);
        return NULL;
    }
    tarn_type *t = NULL;
    parser_ws(p);
    if (strcasecmp(word, "STRUCT") == 0) {
        t = type_new(TARN_T_STRUCT);
        if (!t || p->s[p->pos] != '(') goto fail;
        p->pos++;
        parser_ws(p);
        while (p->s[p->pos] != ')') {
            char *name = parser_ident(p);
            if (!name) goto fail;
            tarn_type *child = parser_type(p);
            if (!child || type_add_child(t, name, child)) {
                free(name);
                tarn_type_free(child);
                goto fail;
            }
            free(name);
            parser_ws(p);
            if (p->s[p->pos] == ',') {
                p->pos++;
                parser_ws(p);
            } else if (p->s[p->pos] != ')') {
                goto fail;
            }
        }
        p->pos++;
    } else if (strcasecmp(word, "MAP") == 0 || strcasecmp(word, "UNION") == 0) {
        if (p->s[p->pos] == '(' && parser_skip_parens(p)) goto fail;
        t = type_new(TARN_T_VARCHAR);
    } else {
        enum tarn_type_kind kind = scalar_kind(word, p->json_null);
        if (p->s[p->pos] == '(' && parser_skip_parens(p)) goto fail; /* DECIMAL(18,3), VARCHAR(10) */
        if (kind == TARN_T_TIMESTAMP && parser_peek_word(p, "WITH")) {
            /* TIMESTAMP WITH TIME ZONE */
            for (int i = 0; i < 3; i++) free(parser_ident(p));
            kind = TARN_T_TIMESTAMPTZ;
        }
        if (strcasecmp(word, "TIMESTAMP_S") == 0 || strcasecmp(word, "TIMESTAMP_MS") == 0 ||
            strcasecmp(word, "TIMESTAMP_NS") == 0)
            kind = TARN_T_TIMESTAMP;
        t = type_new(kind);
    }
    free(word);
    return t;
fail:
    if (!p->eb || !p->eb->msg[0]) tarn_errbuf_set(p->eb, TARN_EINVAL, "cannot parse type at position %zu", p->pos);
    free(word);
    tarn_type_free(t);
    return NULL;
}

static tarn_type *parser_type(type_parser *p)
{
    if (++p->depth > SCHEMA_MAX_DEPTH) {
        tarn_errbuf_set(p->eb, TARN_EINVAL, "type nested deeper than %d", SCHEMA_MAX_DEPTH);
        return NULL;
    }
    tarn_type *t = parser_base(p);
    while (t) {
        parser_ws(p);
        if (p->s[p->pos] != '[') break;
        p->pos++;
        while (isdigit((unsigned char)p->s[p->pos])) p->pos++; /* fixed-size ARRAY */
        if (p->s[p->pos] != ']') {
            tarn_type_free(t);
            tarn_errbuf_set(p->eb, TARN_EINVAL, "expected ']' at position %zu", p->pos);
            return NULL;
        }
        p->pos++;
        tarn_type *list = type_new(TARN_T_LIST);
        if (!list || type_add_child(list, NULL, t)) {
            tarn_type_free(list);
            tarn_type_free(t);
            return NULL;
        }
        t = list;
    }
    p->depth--;
    return t;
}

static int type_parse(const char *text, int json_null, tarn_type **out, tarn_errbuf *eb)
{
    type_parser p = {text, 0, eb, 0, json_null};
    if (eb) eb->msg[0] = '\0';
    tarn_type *t = parser_type(&p);
    if (t) {
        parser_ws(&p);
        if (text[p.pos] != '\0') {
            tarn_type_free(t);
            t = NULL;
            tarn_errbuf_set(eb, TARN_EINVAL, "unexpected '%c' at position %zu in type", text[p.pos], p.pos);
        }
    }
    if (!t) {
        if (eb && !eb->msg[0]) tarn_errbuf_set(eb, TARN_EINVAL, "cannot parse type '%s'", text);
        return TARN_EINVAL;
    }
    *out = t;
    return TARN_OK;
}

int tarn_type_parse(const char *text, tarn_type **out, tarn_errbuf *eb) { return type_parse(text, 0, out, eb); }

int tarn_type_parse_inferred(const char *text, tarn_type **out, tarn_errbuf *eb)
{
    return type_parse(text, 1, out, eb);
}

int tarn_type_format(const tarn_type *t, tarn_buf *out)
{
    static const char *names[] = {
        [TARN_T_BOOLEAN] = "BOOLEAN",     [TARN_T_BIGINT] = "BIGINT",      [TARN_T_HUGEINT] = "HUGEINT",
        [TARN_T_DOUBLE] = "DOUBLE",       [TARN_T_VARCHAR] = "VARCHAR",
        [TARN_T_DATE] = "DATE",           [TARN_T_TIME] = "TIME",
        [TARN_T_TIMESTAMP] = "TIMESTAMP", [TARN_T_TIMESTAMPTZ] = "TIMESTAMP WITH TIME ZONE",
        [TARN_T_UUID] = "UUID",           [TARN_T_NULL] = "NULL",
    };
    int rc = TARN_OK;
    switch (t->kind) {
    case TARN_T_STRUCT:
        rc = tarn_buf_append_str(out, "STRUCT(");
        for (size_t i = 0; i < t->nchildren && !rc; i++) {
            if (i) rc = tarn_buf_append_str(out, ", ");
            if (!rc) rc = tarn_sql_ident(out, t->names[i]);
            if (!rc) rc = tarn_buf_append_char(out, ' ');
            if (!rc) rc = tarn_type_format(t->children[i], out);
        }
        return rc ? rc : tarn_buf_append_char(out, ')');
    case TARN_T_LIST:
        rc = tarn_type_format(t->children[0], out);
        return rc ? rc : tarn_buf_append_str(out, "[]");
    default:
        return tarn_buf_append_str(out, names[t->kind]);
    }
}

static tarn_type *type_copy(const tarn_type *t)
{
    tarn_type *c = type_new(t->kind);
    if (!c) return NULL;
    for (size_t i = 0; i < t->nchildren; i++) {
        tarn_type *child = type_copy(t->children[i]);
        if (!child || type_add_child(c, t->names ? t->names[i] : NULL, child)) {
            tarn_type_free(child);
            tarn_type_free(c);
            return NULL;
        }
    }
    return c;
}

static int kind_is_scalar(enum tarn_type_kind k) { return k != TARN_T_STRUCT && k != TARN_T_LIST; }

tarn_type *tarn_type_merge(const tarn_type *a, const tarn_type *b)
{
    if (b->kind == TARN_T_NULL) return type_copy(a);
    if (a->kind == TARN_T_NULL) return type_copy(b);
    if (a->kind == b->kind && kind_is_scalar(a->kind)) return type_copy(a);
    if (a->kind == TARN_T_LIST && b->kind == TARN_T_LIST) {
        tarn_type *elem = tarn_type_merge(a->children[0], b->children[0]);
        tarn_type *l = elem ? type_new(TARN_T_LIST) : NULL;
        if (!l || type_add_child(l, NULL, elem)) {
            tarn_type_free(elem);
            tarn_type_free(l);
            return NULL;
        }
        return l;
    }
    if (a->kind == TARN_T_STRUCT && b->kind == TARN_T_STRUCT) {
        tarn_type *s = type_new(TARN_T_STRUCT);
        if (!s) return NULL;
        for (size_t i = 0; i < a->nchildren; i++) {
            const tarn_type *other = NULL;
            for (size_t j = 0; j < b->nchildren; j++)
                if (strcasecmp(a->names[i], b->names[j]) == 0) other = b->children[j];
            tarn_type *f = other ? tarn_type_merge(a->children[i], other) : type_copy(a->children[i]);
            if (!f || type_add_child(s, a->names[i], f)) goto fail;
            continue;
        fail:
            tarn_type_free(f);
            tarn_type_free(s);
            return NULL;
        }
        for (size_t j = 0; j < b->nchildren; j++) {
            int seen = 0;
            for (size_t i = 0; i < a->nchildren && !seen; i++) seen = strcasecmp(a->names[i], b->names[j]) == 0;
            if (seen) continue;
            tarn_type *f = type_copy(b->children[j]);
            if (!f || type_add_child(s, b->names[j], f)) {
                tarn_type_free(f);
                tarn_type_free(s);
                return NULL;
            }
        }
        return s;
    }
    int a_int = a->kind == TARN_T_BIGINT || a->kind == TARN_T_HUGEINT;
    int b_int = b->kind == TARN_T_BIGINT || b->kind == TARN_T_HUGEINT;
    if (a_int && b_int) return type_new(TARN_T_HUGEINT);
    if ((a_int && b->kind == TARN_T_DOUBLE) || (a->kind == TARN_T_DOUBLE && b_int)) return type_new(TARN_T_DOUBLE);
    if ((a->kind == TARN_T_DATE && b->kind == TARN_T_TIMESTAMP) || (a->kind == TARN_T_TIMESTAMP && b->kind == TARN_T_DATE))
        return type_new(TARN_T_TIMESTAMP);
    return type_new(TARN_T_VARCHAR);
}

void tarn_columns_free(tarn_column *c, size_t n)
{
    if (!c) return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].name);
        free(c[i].type);
    }
    free(c);
}

int tarn_columns_equal(const tarn_column *a, size_t na, const tarn_column *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].type, b[i].type) != 0) return 0;
    return 1;
}

void tarn_type_null_to_varchar(tarn_type *t)
{
    if (t->kind == TARN_T_NULL) t->kind = TARN_T_VARCHAR;
    for (size_t i = 0; i < t->nchildren; i++) tarn_type_null_to_varchar(t->children[i]);
}

/* Normalized text of a type (parse + format), or of the merge of two. */
static char *type_text(const char *ta, const char *tb, tarn_errbuf *eb)
{
    tarn_type *a = NULL, *b = NULL, *m = NULL;
    char *res = NULL;
    tarn_buf out;
    tarn_buf_init(&out, 1 << 20);
    if (tarn_type_parse(ta, &a, eb)) goto done;
    if (tb && tarn_type_parse(tb, &b, eb)) goto done;
    m = b ? tarn_type_merge(a, b) : NULL;
    if (b && !m) goto done;
    tarn_type_null_to_varchar(m ? m : a);
    if (tarn_type_format(m ? m : a, &out)) goto done;
    res = tarn_buf_steal(&out);
done:
    tarn_buf_free(&out);
    tarn_type_free(a);
    tarn_type_free(b);
    tarn_type_free(m);
    return res;
}

static int name_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0) return 1;
    return 0;
}

static const tarn_column *column_find(const tarn_column *cols, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(cols[i].name, name) == 0) return &cols[i];
    return NULL;
}

int tarn_columns_merge(const tarn_column *current, size_t ncurrent, const tarn_column *batch, size_t nbatch,
                       const char *const *trailing, size_t ntrailing, tarn_column **out, size_t *n_out,
                       tarn_errbuf *eb)
{
    size_t cap = ncurrent + nbatch + ntrailing;
    tarn_column *res = calloc(cap ? cap : 1, sizeof *res);
    size_t n = 0;
    if (!res) return TARN_ENOMEM;

    /* Pass 0: current columns; pass 1: new batch columns; pass 2: trailing. */
    for (int pass = 0; pass < 3; pass++) {
        const tarn_column *src = pass == 1 ? batch : current;
        size_t nsrc = pass == 1 ? nbatch : ncurrent;
        if (pass == 2) nsrc = ntrailing;
        for (size_t i = 0; i < nsrc; i++) {
            const char *name = pass == 2 ? trailing[i] : src[i].name;
            int is_trailing = name_in(name, trailing, ntrailing);
            if (pass < 2 && is_trailing) continue;
            if (pass == 1 && column_find(current, ncurrent, name)) continue;
            const tarn_column *c = column_find(current, ncurrent, name);
            const tarn_column *bc = column_find(batch, nbatch, name);
            if (!c && !bc) continue;
            char *type = c && bc ? type_text(c->type, bc->type, eb) : type_text(c ? c->type : bc->type, NULL, eb);
            if (!type) {
                tarn_columns_free(res, n);
                return TARN_EINVAL;
            }
            res[n].name = strdup(name);
            res[n].type = type;
            if (!res[n].name) {
                free(type);
                tarn_columns_free(res, n);
                return TARN_ENOMEM;
            }
            n++;
        }
    }
    *out = res;
    *n_out = n;
    return TARN_OK;
}

static int type_narrow_hugeint(tarn_type *t)
{
    int changed = 0;
    if (t->kind == TARN_T_HUGEINT) {
        t->kind = TARN_T_BIGINT;
        changed = 1;
    }
    for (size_t i = 0; i < t->nchildren; i++) changed |= type_narrow_hugeint(t->children[i]);
    return changed;
}

/* Rewrites with fn (which says whether it changed the tree) the type of
 * every column but `keep` whose type text holds `hint` (NULL: any); returns
 * the number of columns changed. The hint spares parsing types fn cannot
 * change. */
static int columns_rewrite(tarn_column *cols, size_t n, int (*fn)(tarn_type *), const char *keep, const char *hint,
                           tarn_errbuf *eb)
{
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        if ((keep && strcmp(cols[i].name, keep) == 0) || (hint && !strstr(cols[i].type, hint))) continue;
        tarn_type *t = NULL;
        int rc = tarn_type_parse(cols[i].type, &t, eb);
        if (rc) return rc;
        if (fn(t)) {
            tarn_buf b;
            tarn_buf_init(&b, 1 << 20);
            rc = tarn_type_format(t, &b);
            if (rc) {
                tarn_buf_free(&b);
                tarn_type_free(t);
                return rc;
            }
            free(cols[i].type);
            cols[i].type = tarn_buf_steal(&b);
            changed++;
        }
        tarn_type_free(t);
    }
    return changed;
}

int tarn_columns_narrow_hugeint(tarn_column *cols, size_t n, tarn_errbuf *eb)
{
    return columns_rewrite(cols, n, type_narrow_hugeint, NULL, "INT", eb);
}

int tarn_type_kind_is_text(enum tarn_type_kind k)
{
    return k == TARN_T_DATE || k == TARN_T_TIME || k == TARN_T_TIMESTAMP || k == TARN_T_TIMESTAMPTZ ||
           k == TARN_T_UUID;
}

static int type_text_as_varchar(tarn_type *t)
{
    int changed = 0;
    if (tarn_type_kind_is_text(t->kind)) {
        t->kind = TARN_T_VARCHAR;
        changed = 1;
    }
    for (size_t i = 0; i < t->nchildren; i++) changed |= type_text_as_varchar(t->children[i]);
    return changed;
}

int tarn_columns_text_as_varchar(tarn_column *cols, size_t n, const char *keep, tarn_errbuf *eb)
{
    return columns_rewrite(cols, n, type_text_as_varchar, keep, NULL, eb);
}
