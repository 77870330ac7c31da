/* table.c - the aligned text tables the client prints, in psql's layout:
 *
 *    country | users
 *   ---------+-------
 *    Norway  |    12
 *   (1 row)
 *
 * Widths are counted in code points, which is what a terminal shows for
 * most text (wide CJK characters are the exception and are not measured).
 * Lines carry no trailing spaces. Rendering takes two passes over the parsed
 * reply (measure, then print) and builds no copy of the cells, so a 100,000
 * row result costs one line of scratch memory on top of the parsed JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli_internal.h"

static const char ellipsis[] = "\xE2\x80\xA6"; /* U+2026 "…" */

size_t cli_utf8_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) w++;
    return w;
}

/* Bytes of the first `cols` code points of s[0..n). */
static size_t utf8_prefix(const char *s, size_t n, size_t cols)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (w == cols) return i;
            w++;
        }
    }
    return n;
}

void cli_format_double(double d, char *out, size_t outsz)
{
    if (isnan(d)) {
        snprintf(out, outsz, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, outsz, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, d);
        if (strtod(out, NULL) == d) break;
    }
    /* Keep a real looking like one, as DuckDB prints DOUBLE 1 as "1.0". */
    if (!strpbrk(out, ".e")) {
        size_t len = strlen(out);
        if (len + 3 <= outsz) memcpy(out + len, ".0", 3);
    }
}

/* Compact JSON, with reals in their shortest form (jansson would print 0.1
 * as 0.10000000000000001). */
static int append_json(tarn_buf *out, const json_t *v)
{
    int rc = TARN_OK;
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        if ((rc = tarn_buf_append_char(out, '{'))) return rc;
        json_object_foreach((json_t *)v, key, val) {
            if (!first && (rc = tarn_buf_append_char(out, ','))) return rc;
            first = 0;
            if ((rc = tarn_buf_append_json_str(out, key, strlen(key)))) return rc;
            if ((rc = tarn_buf_append_char(out, ':'))) return rc;
            if ((rc = append_json(out, val))) return rc;
        }
        return tarn_buf_append_char(out, '}');
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        if ((rc = tarn_buf_append_char(out, '['))) return rc;
        json_array_foreach(v, i, val) {
            if (i > 0 && (rc = tarn_buf_append_char(out, ','))) return rc;
            if ((rc = append_json(out, val))) return rc;
        }
        return tarn_buf_append_char(out, ']');
    }
    case JSON_STRING:
        return tarn_buf_append_json_str(out, json_string_value(v), json_string_length(v));
    case JSON_REAL:
        cli_format_double(json_real_value(v), num, sizeof num);
        return tarn_buf_append_str(out, num);
    case JSON_NULL:
        return tarn_buf_append_str(out, "null");
    default: /* integers, true, false */
        return cli_format_value(out, v);
    }
}

int cli_format_value(tarn_buf *out, const json_t *v)
{
    char num[64];
    if (!v) return tarn_buf_append_str(out, "");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return tarn_buf_append_str(out, "NULL");
    case JSON_TRUE:
        return tarn_buf_append_str(out, "true");
    case JSON_FALSE:
        return tarn_buf_append_str(out, "false");
    case JSON_INTEGER:
        return tarn_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        cli_format_double(json_real_value(v), num, sizeof num);
        return tarn_buf_append_str(out, num);
    case JSON_STRING: {
        /* A control character would break the line; show it escaped. */
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), run = 0;
        int rc;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c >= 0x20 && c != 0x7f) continue;
            if ((rc = tarn_buf_append(out, s + run, i - run))) return rc;
            run = i + 1;
            if (c == '\n') rc = tarn_buf_append_str(out, "\\n");
            else if (c == '\r') rc = tarn_buf_append_str(out, "\\r");
            else if (c == '\t') rc = tarn_buf_append_str(out, "\\t");
            else rc = tarn_buf_printf(out, "\\u%04x", c);
            if (rc) return rc;
        }
        return tarn_buf_append(out, s + run, n - run);
    }
    default:
        return append_json(out, v);
    }
}

void cli_format_bytes(int64_t n, char *out, size_t outsz)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(out, outsz, "%lld B", (long long)n);
        return;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, outsz, "%.1f %s", v, units[u]);
}

void cli_format_duration(int64_t s, char *out, size_t outsz)
{
    if (s < 0) s = 0;
    long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
    if (d) snprintf(out, outsz, "%lldd %lldh %lldm %llds", d, h, m, sec);
    else if (h) snprintf(out, outsz, "%lldh %lldm %llds", h, m, sec);
    else if (m) snprintf(out, outsz, "%lldm %llds", m, sec);
    else snprintf(out, outsz, "%llds", sec);
}

/* DuckDB's numeric types (as the server names them), which get
 * right-aligned; DECIMAL and HUGEINT arrive as strings but are numbers. */
static int type_is_numeric(const char *t)
{
    static const char *names[] = {"TINYINT",  "SMALLINT", "INTEGER", "INT",    "BIGINT", "HUGEINT",
                                  "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT",
                                  "DOUBLE",   "REAL",     "DECIMAL", "NUMERIC"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(t, names[i]) == 0) return 1;
    return strncasecmp(t, "DECIMAL(", 8) == 0 || strncasecmp(t, "NUMERIC(", 8) == 0;
}

typedef struct table_col {
    const char *name;
    size_t width;
    int right;
} table_col;

/* Cuts the text in scratch to max_cell code points (0: no limit) and gives
 * its width. */
static int text_cut(tarn_buf *scratch, size_t max_cell, size_t *width)
{
    size_t w = cli_utf8_width(scratch->data ? scratch->data : "", scratch->len);
    if (max_cell && w > max_cell) {
        scratch->len = utf8_prefix(scratch->data, scratch->len, max_cell - 1);
        int rc = tarn_buf_append_str(scratch, ellipsis);
        if (rc) return rc;
        w = max_cell;
    }
    *width = w;
    return TARN_OK;
}

/* The text of a cell, cut to max_cell code points, in scratch. */
static int cell_text(tarn_buf *scratch, const json_t *v, size_t max_cell, size_t *width)
{
    tarn_buf_reset(scratch);
    int rc = cli_format_value(scratch, v);
    return rc ? rc : text_cut(scratch, max_cell, width);
}

static int header_text(tarn_buf *scratch, const char *name, size_t max_cell, size_t *width)
{
    tarn_buf_reset(scratch);
    int rc = tarn_buf_append_str(scratch, name);
    return rc ? rc : text_cut(scratch, max_cell, width);
}

static int line_add_cell(tarn_buf *line, size_t col, const table_col *c, const char *text, size_t len,
                         size_t width)
{
    int rc = tarn_buf_append_str(line, col == 0 ? " " : " | ");
    size_t pad = c->width > width ? c->width - width : 0;
    for (size_t i = 0; !rc && c->right && i < pad; i++) rc = tarn_buf_append_char(line, ' ');
    if (!rc) rc = tarn_buf_append(line, text, len);
    for (size_t i = 0; !rc && !c->right && i < pad; i++) rc = tarn_buf_append_char(line, ' ');
    return rc;
}

static int line_write(FILE *out, tarn_buf *line)
{
    while (line->len > 0 && line->data[line->len - 1] == ' ') line->len--;
    if (line->len) fwrite(line->data, 1, line->len, out);
    fputc('\n', out);
    tarn_buf_reset(line);
    return TARN_OK;
}

int cli_print_table(FILE *out, const json_t *result, size_t max_cell, const char *noun, tarn_errbuf *eb)
{
    const json_t *columns = json_object_get(result, "columns");
    const json_t *rows = json_object_get(result, "rows");
    if (!json_is_array(columns) || !json_is_array(rows))
        return tarn_errbuf_set(eb, TARN_EINVAL, "unexpected reply: no \"columns\" and \"rows\" arrays");
    size_t ncols = json_array_size(columns), nrows = json_array_size(rows);
    for (size_t r = 0; r < nrows; r++)
        if (!json_is_array(json_array_get(rows, r)))
            return tarn_errbuf_set(eb, TARN_EINVAL, "unexpected reply: row %zu is not an array", r + 1);

    int rc = TARN_OK;
    tarn_buf scratch, line;
    tarn_buf_init(&scratch, CLI_REPLY_MAX);
    tarn_buf_init(&line, CLI_REPLY_MAX);
    table_col *cols = calloc(ncols ? ncols : 1, sizeof *cols);
    if (!cols) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
        goto out;
    }

    /* Pass 1: alignment and widths. A column without a type is numeric if
     * every value in it is a number. */
    for (size_t c = 0; c < ncols; c++) {
        const json_t *col = json_array_get(columns, c);
        const char *name = json_string_value(json_object_get(col, "name"));
        const char *type = json_string_value(json_object_get(col, "type"));
        cols[c].name = name ? name : "";
        if (type && *type) {
            cols[c].right = type_is_numeric(type);
        } else {
            int numbers = 0, others = 0;
            for (size_t r = 0; r < nrows; r++) {
                const json_t *v = json_array_get(json_array_get(rows, r), c);
                if (json_is_number(v)) numbers++;
                else if (v && !json_is_null(v)) others++;
            }
            cols[c].right = numbers > 0 && others == 0;
        }
        if ((rc = header_text(&scratch, cols[c].name, max_cell, &cols[c].width))) {
            rc = tarn_errbuf_set(eb, rc, "out of memory");
            goto out;
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        const json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            size_t w;
            if ((rc = cell_text(&scratch, json_array_get(row, c), max_cell, &w))) {
                rc = tarn_errbuf_set(eb, rc, "out of memory");
                goto out;
            }
            if (w > cols[c].width) cols[c].width = w;
        }
    }

    /* Pass 2: print. */
    if (ncols > 0) {
        for (size_t c = 0; c < ncols && !rc; c++) {
            size_t w;
            rc = header_text(&scratch, cols[c].name, max_cell, &w);
            if (!rc) rc = line_add_cell(&line, c, &cols[c], scratch.data, scratch.len, w);
        }
        if (!rc) rc = line_write(out, &line);
        for (size_t c = 0; c < ncols && !rc; c++) {
            if (c > 0) rc = tarn_buf_append_char(&line, '+');
            for (size_t i = 0; !rc && i < cols[c].width + 2; i++) rc = tarn_buf_append_char(&line, '-');
        }
        if (!rc) rc = line_write(out, &line);
        for (size_t r = 0; r < nrows && !rc; r++) {
            const json_t *row = json_array_get(rows, r);
            for (size_t c = 0; c < ncols && !rc; c++) {
                size_t w;
                rc = cell_text(&scratch, json_array_get(row, c), max_cell, &w);
                if (!rc) rc = line_add_cell(&line, c, &cols[c], scratch.data, scratch.len, w);
            }
            if (!rc) rc = line_write(out, &line);
        }
        if (rc) {
            rc = tarn_errbuf_set(eb, rc, "out of memory");
            goto out;
        }
    }
    if (noun) {
        fprintf(out, "(%zu %s%s)\n", nrows, noun, nrows == 1 ? "" : "s");
        if (json_is_true(json_object_get(result, "truncated"))) {
            long long total = (long long)json_integer_value(json_object_get(result, "row_count"));
            if (total <= 0) total = (long long)nrows;
            fprintf(out, "(truncated at %lld %ss)\n", total, noun);
        }
    }

out:
    free(cols);
    tarn_buf_free(&scratch);
    tarn_buf_free(&line);
    return rc;
}
