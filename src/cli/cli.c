/* cli.c - `tarn` subcommands other than serve: options, usage, dispatch,
 * and the commands that are one request and a printout (query, tables,
 * describe, flush, status). ingest.c holds the one that streams.
 *
 * Exit status: 0 success, 1 failure (one "tarn: ..." line on stderr),
 * 2 usage error.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "common/util.h"

#define CLI_QUERY_TIMEOUT_S 600L
#define CLI_FLUSH_TIMEOUT_S 600L /* a flush waits for a whole backlog to be delivered */
#define CLI_TIMEOUT_S 120L
#define CLI_TOKEN_FILE_MAX 4096

static const char usage_text[] =
    "usage: tarn [--url URL] [--token TOKEN] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  serve [--data DIR] [--listen ADDR:PORT] [--config FILE]\n"
    "      Run the server (default: --data ./tarn-data --listen 127.0.0.1:8470).\n"
    "  ingest DB.TABLE [FILE|-]\n"
    "      Send NDJSON or a JSON array of objects from FILE or stdin.\n"
    "  query [--format table|csv|json] [--database DB] SQL\n"
    "      Run one SELECT and print the result (default format: table).\n"
    "  tables [--database DB]\n"
    "      List tables with their size and delivery progress.\n"
    "  describe DB.TABLE\n"
    "      Show a table's columns, partitions and totals.\n"
    "  flush DB.TABLE\n"
    "      Deliver everything ingested so far and wait until it is queryable.\n"
    "  status\n"
    "      Show the server's state and each table's progress.\n"
    "  help\n"
    "      Show this help.\n"
    "\n"
    "options:\n"
    "  --url URL       server to talk to (else $TARN_URL, else " CLI_DEFAULT_URL ")\n"
    "  --token TOKEN   API token (else $TARN_TOKEN, else ./" CLI_TOKEN_FILE ")\n"
    "  --help          show this help\n"
    "  --version       show the version\n";

int cli_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "tarn: %s\n", msg);
    return 1;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "tarn: %s (see 'tarn help')\n", msg);
    return 2;
}

/* ------------------------------------------------------------ options */

struct option_def {
    const char *name;
    unsigned bit; /* 0: a flag without a value */
};

static const struct option_def option_defs[] = {
    {"url", CLI_OPT_URL}, {"token", CLI_OPT_TOKEN}, {"format", CLI_OPT_FORMAT},
    {"database", CLI_OPT_DATABASE}, {"help", 0}, {"version", 0},
};

static int is_option(const char *a)
{
    return strcmp(a, "-h") == 0 || (a[0] == '-' && a[1] == '-' && isalpha((unsigned char)a[2]));
}

static int set_option(cli_opts *o, const struct option_def *d, const char *value, tarn_errbuf *eb)
{
    switch (d->bit) {
    case CLI_OPT_URL:
        o->url = value;
        break;
    case CLI_OPT_TOKEN:
        o->token = value;
        break;
    case CLI_OPT_FORMAT:
        if (strcmp(value, "table") == 0) o->format = CLI_FORMAT_TABLE;
        else if (strcmp(value, "csv") == 0) o->format = CLI_FORMAT_CSV;
        else if (strcmp(value, "json") == 0) o->format = CLI_FORMAT_JSON;
        else return tarn_errbuf_set(eb, TARN_EINVAL, "--format must be table, csv or json, not '%.64s'", value);
        break;
    case CLI_OPT_DATABASE:
        if (!tarn_name_valid(value))
            return tarn_errbuf_set(eb, TARN_EINVAL,
                                   "bad database name '%.140s': use 1 to 128 letters, digits or '_'", value);
        o->database = value;
        break;
    }
    o->seen |= d->bit;
    return TARN_OK;
}

int cli_parse_args(int argc, char **argv, cli_opts *o, tarn_errbuf *eb)
{
    memset(o, 0, sizeof *o);
    o->format = CLI_FORMAT_TABLE;
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done && is_option(a)) {
            if (strcmp(a, "-h") == 0) {
                o->help = 1;
                continue;
            }
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct option_def *d = NULL;
            for (size_t k = 0; k < sizeof option_defs / sizeof option_defs[0]; k++)
                if (strlen(option_defs[k].name) == len && strncmp(option_defs[k].name, name, len) == 0)
                    d = &option_defs[k];
            if (!d) return tarn_errbuf_set(eb, TARN_EINVAL, "unknown option '--%.*s'", (int)(len > 64 ? 64 : len), name);
            if (d->bit == 0) {
                if (eq) return tarn_errbuf_set(eb, TARN_EINVAL, "option '--%s' takes no value", d->name);
                if (strcmp(d->name, "help") == 0) o->help = 1;
                else o->version = 1;
                continue;
            }
            const char *value = eq ? eq + 1 : NULL;
            if (!value) {
                if (i + 1 >= argc) return tarn_errbuf_set(eb, TARN_EINVAL, "option '--%s' needs a value", d->name);
                value = argv[++i];
            }
            int rc = set_option(o, d, value, eb);
            if (rc) return rc;
            continue;
        }
        if (!o->command) o->command = a;
        else if (o->nargs < CLI_MAX_ARGS) o->args[o->nargs++] = a;
        else return tarn_errbuf_set(eb, TARN_EINVAL, "too many arguments");
    }
    return TARN_OK;
}

static char *dup_trimmed(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0) return NULL;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int cli_conn_resolve(cli_conn *c, const cli_opts *o, const char *env_url, const char *env_token,
                     const char *token_path, tarn_errbuf *eb)
{
    memset(c, 0, sizeof *c);
    const char *url = o->url && *o->url ? o->url : env_url && *env_url ? env_url : CLI_DEFAULT_URL;
    tarn_buf b;
    tarn_buf_init(&b, 4096);
    int rc = strstr(url, "://") ? tarn_buf_append_str(&b, url) : tarn_buf_printf(&b, "http://%s", url);
    if (rc) {
        tarn_buf_free(&b);
        return tarn_errbuf_set(eb, TARN_EINVAL, "server URL too long");
    }
    while (b.len > 0 && b.data[b.len - 1] == '/') b.data[--b.len] = '\0';
    if (strncmp(b.data, "http://", 7) != 0 && strncmp(b.data, "https://", 8) != 0) {
        rc = tarn_errbuf_set(eb, TARN_EINVAL, "bad server URL '%.200s': expected http://HOST:PORT", b.data);
        tarn_buf_free(&b);
        return rc;
    }
    for (size_t i = 0; i < b.len; i++) {
        if ((unsigned char)b.data[i] <= 0x20 || b.data[i] == 0x7f) {
            tarn_buf_free(&b);
            return tarn_errbuf_set(eb, TARN_EINVAL, "bad server URL: it contains spaces or control characters");
        }
    }
    c->url = tarn_buf_steal(&b);

    if (o->token && *o->token) {
        c->token = dup_trimmed(o->token);
    } else if (env_token && *env_token) {
        c->token = dup_trimmed(env_token);
    } else if (token_path) {
        char *data = NULL;
        tarn_errbuf ignored;
        /* A missing or unreadable file means no token: the server's 401
         * then says what is wrong. */
        if (tarn_read_file(token_path, CLI_TOKEN_FILE_MAX, &data, NULL, &ignored) == TARN_OK) {
            c->token = dup_trimmed(data);
            free(data);
        }
    }
    for (const char *p = c->token; p && *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            cli_conn_free(c);
            return tarn_errbuf_set(eb, TARN_EINVAL, "the token contains characters an HTTP header cannot carry");
        }
    }
    return TARN_OK;
}

void cli_conn_free(cli_conn *c)
{
    free(c->url);
    if (c->token) {
        volatile char *p = c->token;
        while (*p) *p++ = 0;
        free(c->token);
    }
    c->url = NULL;
    c->token = NULL;
}

int cli_parse_table_name(const char *arg, char *db, char *table, tarn_errbuf *eb)
{
    const char *dot = strchr(arg, '.');
    if (!dot || strchr(dot + 1, '.'))
        return tarn_errbuf_set(eb, TARN_EINVAL, "expected DB.TABLE, got '%.280s'", arg);
    size_t dlen = (size_t)(dot - arg), tlen = strlen(dot + 1);
    if (dlen == 0 || dlen > CLI_NAME_MAX || tlen == 0 || tlen > CLI_NAME_MAX)
        return tarn_errbuf_set(eb, TARN_EINVAL, "bad table '%.280s': names are 1 to 128 letters, digits or '_'", arg);
    memcpy(db, arg, dlen);
    db[dlen] = '\0';
    memcpy(table, dot + 1, tlen + 1);
    if (!tarn_name_valid(db) || !tarn_name_valid(table))
        return tarn_errbuf_set(eb, TARN_EINVAL, "bad table '%.280s': names are 1 to 128 letters, digits or '_'", arg);
    return TARN_OK;
}

/* ------------------------------------------------------------ requests */

/* Reports an error reply (status not 2xx) and returns 1. */
static int reply_failure(const cli_http *h)
{
    char msg[1800];
    int64_t index;
    cli_reply_error(h->status, h->reply.data, h->reply.len, msg, sizeof msg, &index);
    if (h->status == 401) return cli_fail("401: %s " CLI_TOKEN_HINT, msg);
    return cli_fail("%ld: %s", h->status, msg);
}

/* Sends a request and, for a 2xx JSON reply, parses it into *out. Any
 * failure is reported (one line) and returns 1. */
static int request_json(cli_http *h, const char *method, const char *path, const char *body, size_t len,
                        long timeout_s, json_t **out)
{
    tarn_errbuf eb;
    *out = NULL;
    if (cli_http_request(h, method, path, body ? "application/json" : NULL, "application/json", body, len,
                         timeout_s, NULL, &eb))
        return cli_fail("%s", eb.msg);
    if (h->status / 100 != 2) return reply_failure(h);
    if (!(*out = cli_parse_json(h->reply.data, h->reply.len, &eb))) return cli_fail("%s", eb.msg);
    return 0;
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

static long long int_or(const json_t *obj, const char *key, long long dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* A {"columns", "rows"} result for cli_print_table, built from a list of
 * objects: column c shows key keys[c] under the heading names[c], aligned as
 * types[c]. A key ending in '~' is a byte count, shown human-readable.
 * Returns a new reference, or NULL if out of memory. */
static json_t *result_from_objects(const json_t *list, const char *const *keys, const char *const *names,
                                   const char *const *types, size_t ncols)
{
    json_t *res = json_object(), *columns = json_array(), *rows = json_array();
    if (!res || !columns || !rows) {
        json_decref(res);
        json_decref(columns);
        json_decref(rows);
        return NULL;
    }
    json_object_set_new(res, "columns", columns);
    json_object_set_new(res, "rows", rows);
    for (size_t c = 0; c < ncols; c++)
        json_array_append_new(columns, json_pack("{s:s,s:s}", "name", names[c], "type", types[c]));
    size_t i;
    const json_t *item;
    json_array_foreach(list, i, item) {
        json_t *row = json_array();
        if (!row) {
            json_decref(res);
            return NULL;
        }
        for (size_t c = 0; c < ncols; c++) {
            size_t klen = strlen(keys[c]);
            if (klen > 0 && keys[c][klen - 1] == '~') {
                char key[64], human[32];
                snprintf(key, sizeof key, "%.*s", (int)(klen - 1), keys[c]);
                const json_t *v = json_object_get(item, key);
                if (json_is_integer(v)) {
                    cli_format_bytes((int64_t)json_integer_value(v), human, sizeof human);
                    json_array_append_new(row, json_string(human));
                } else {
                    json_array_append_new(row, json_null());
                }
                continue;
            }
            const json_t *v = json_object_get(item, keys[c]);
            json_array_append_new(row, v ? json_incref((json_t *)v) : json_null());
        }
        json_array_append_new(rows, row);
    }
    return res;
}

static int print_objects(const json_t *list, const char *const *keys, const char *const *names,
                         const char *const *types, size_t ncols, size_t max_cell, const char *noun)
{
    tarn_errbuf eb;
    json_t *res = result_from_objects(json_is_array(list) ? list : NULL, keys, names, types, ncols);
    if (!res) return cli_fail("out of memory");
    int rc = cli_print_table(stdout, res, max_cell, noun, &eb);
    json_decref(res);
    return rc ? cli_fail("%s", eb.msg) : 0;
}

/* ------------------------------------------------------------ commands */

static int cmd_query(cli_ctx *ctx, cli_http *h)
{
    const cli_opts *o = ctx->opts;
    tarn_buf body;
    tarn_errbuf eb;
    const char *sql = o->args[0];
    int status = 1;
    tarn_buf_init(&body, 0);
    if (tarn_buf_append_str(&body, "{\"sql\":") || tarn_buf_append_json_str(&body, sql, strlen(sql)) ||
        (o->database && tarn_buf_printf(&body, ",\"database\":\"%s\"", o->database)) ||
        tarn_buf_append_char(&body, '}')) {
        status = cli_fail("out of memory");
        goto out;
    }
    const char *accept = o->format == CLI_FORMAT_CSV ? "text/csv" : "application/json";
    if (cli_http_request(h, "POST", "/v1/query", "application/json", accept, body.data, body.len,
                         CLI_QUERY_TIMEOUT_S, NULL, &eb)) {
        status = cli_fail("%s", eb.msg);
        goto out;
    }
    if (h->status / 100 != 2) {
        status = reply_failure(h);
        goto out;
    }
    if (o->format != CLI_FORMAT_TABLE) {
        fwrite(h->reply.data, 1, h->reply.len, stdout);
        if (o->format == CLI_FORMAT_JSON && (h->reply.len == 0 || h->reply.data[h->reply.len - 1] != '\n'))
            fputc('\n', stdout);
        status = 0;
        goto out;
    }
    json_t *res = cli_parse_json(h->reply.data, h->reply.len, &eb);
    if (!res) {
        status = cli_fail("%s", eb.msg);
        goto out;
    }
    /* The raw reply is no longer needed; give its memory back before the
     * table is printed. */
    tarn_buf_free(&h->reply);
    tarn_buf_init(&h->reply, CLI_REPLY_MAX);
    status = cli_print_table(stdout, res, CLI_CELL_WIDTH, "row", &eb) ? cli_fail("%s", eb.msg) : 0;
    json_decref(res);
out:
    tarn_buf_free(&body);
    return status;
}

static int cmd_tables(cli_ctx *ctx, cli_http *h)
{
    static const char *const keys[] = {"database", "name", "columns", "files", "rows", "bytes~", "delivered_seq"};
    static const char *const names[] = {"database", "table", "columns", "files", "rows", "bytes", "delivered_seq"};
    static const char *const types[] = {"VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"};
    char path[64 + CLI_NAME_MAX];
    json_t *reply;
    if (ctx->opts->database) snprintf(path, sizeof path, "/v1/tables?database=%s", ctx->opts->database);
    else snprintf(path, sizeof path, "/v1/tables");
    if (request_json(h, "GET", path, NULL, 0, CLI_TIMEOUT_S, &reply)) return 1;
    int status = print_objects(json_object_get(reply, "tables"), keys, names, types, 7, CLI_CELL_WIDTH, "table");
    json_decref(reply);
    return status;
}

static int cmd_describe(cli_ctx *ctx, cli_http *h)
{
    static const char *const col_keys[] = {"name", "type"};
    static const char *const col_names[] = {"column", "type"};
    static const char *const col_types[] = {"VARCHAR", "VARCHAR"};
    static const char *const part_keys[] = {"name", "files", "rows", "bytes~"};
    static const char *const part_names[] = {"partition", "files", "rows", "bytes"};
    static const char *const part_types[] = {"VARCHAR", "BIGINT", "BIGINT", "BIGINT"};
    char db[CLI_NAME_MAX + 1], table[CLI_NAME_MAX + 1], path[2 * CLI_NAME_MAX + 32], size[32];
    tarn_errbuf eb;
    json_t *t;
    if (cli_parse_table_name(ctx->opts->args[0], db, table, &eb)) {
        fprintf(stderr, "tarn: %s\n", eb.msg);
        return 2;
    }
    snprintf(path, sizeof path, "/v1/tables/%s/%s", db, table);
    if (request_json(h, "GET", path, NULL, 0, CLI_TIMEOUT_S, &t)) return 1;

    printf("table %s.%s (schema version %lld, delivered through seq %lld)\n\n", db, table,
           int_or(t, "schema_version", 0), int_or(t, "delivered_seq", 0));
    /* Types are shown whole: a STRUCT's fields are the point of describe. */
    int status = print_objects(json_object_get(t, "columns"), col_keys, col_names, col_types, 2, 0, "column");
    if (status == 0) {
        printf("\n");
        status = print_objects(json_object_get(t, "partitions"), part_keys, part_names, part_types, 4,
                               CLI_CELL_WIDTH, "partition");
    }
    if (status == 0) {
        long long files = int_or(t, "files", 0), rows = int_or(t, "rows", 0);
        cli_format_bytes(int_or(t, "bytes", 0), size, sizeof size);
        printf("\ntotal: %lld file%s, %lld row%s, %s\n", files, files == 1 ? "" : "s", rows, rows == 1 ? "" : "s",
               size);
    }
    json_decref(t);
    return status;
}

static int cmd_flush(cli_ctx *ctx, cli_http *h)
{
    char db[CLI_NAME_MAX + 1], table[CLI_NAME_MAX + 1], path[2 * CLI_NAME_MAX + 32];
    tarn_errbuf eb;
    json_t *reply;
    if (cli_parse_table_name(ctx->opts->args[0], db, table, &eb)) {
        fprintf(stderr, "tarn: %s\n", eb.msg);
        return 2;
    }
    snprintf(path, sizeof path, "/v1/tables/%s/%s/flush", db, table);
    if (request_json(h, "POST", path, NULL, 0, CLI_FLUSH_TIMEOUT_S, &reply)) return 1;
    const json_t *seq = json_object_get(reply, "delivered_seq");
    if (!json_is_integer(seq)) {
        json_decref(reply);
        return cli_fail("unexpected reply from the server: no \"delivered_seq\"");
    }
    printf("flushed %s.%s: delivered through seq %lld (raw zone through seq %lld)\n", db, table,
           (long long)json_integer_value(seq), int_or(reply, "raw_seq", 0));
    json_decref(reply);
    return 0;
}

static int cmd_status(cli_ctx *ctx, cli_http *h)
{
    static const char *const keys[] = {"database",      "name",           "durable_seq", "delivered_seq",
                                       "pending_records", "raw_seq",      "raw_pending_records"};
    static const char *const names[] = {"database", "table", "durable_seq", "delivered_seq", "pending", "raw_seq",
                                        "raw_pending"};
    static const char *const types[] = {"VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"};
    json_t *s;
    char uptime[64];
    if (request_json(h, "GET", "/v1/status", NULL, 0, CLI_TIMEOUT_S, &s)) return 1;
    cli_format_duration(int_or(s, "uptime_s", 0), uptime, sizeof uptime);
    printf("server:   %s (tarn %s, listening on %s)\n", ctx->conn.url, str_or(s, "version", "?"),
           str_or(s, "listen", "?"));
    printf("data dir: %s\n", str_or(s, "data_dir", "?"));
    printf("uptime:   %s\n", uptime);
    const json_t *tables = json_object_get(s, "tables");
    int status = 0;
    if (json_array_size(tables) == 0) {
        printf("tables:   none yet\n");
    } else {
        printf("\n");
        status = print_objects(tables, keys, names, types, 7, CLI_CELL_WIDTH, "table");
    }
    json_decref(s);
    return status;
}

/* ------------------------------------------------------------ dispatch */

struct command {
    const char *name;
    int min_args, max_args;
    unsigned options; /* CLI_OPT_* accepted besides the global ones */
    int (*run)(cli_ctx *ctx, cli_http *h);
};

static const struct command commands[] = {
    {"ingest", 1, 2, 0, cli_cmd_ingest},
    {"query", 1, 1, CLI_OPT_FORMAT | CLI_OPT_DATABASE, cmd_query},
    {"tables", 0, 0, CLI_OPT_DATABASE, cmd_tables},
    {"describe", 1, 1, 0, cmd_describe},
    {"flush", 1, 1, 0, cmd_flush},
    {"status", 0, 0, 0, cmd_status},
};

static const char *option_name(unsigned bit)
{
    for (size_t k = 0; k < sizeof option_defs / sizeof option_defs[0]; k++)
        if (option_defs[k].bit == bit) return option_defs[k].name;
    return "?";
}

int tarn_cli_main(int argc, char **argv)
{
    cli_opts o;
    tarn_errbuf eb = {{0}};
    char msg[600];
    if (cli_parse_args(argc, argv, &o, &eb)) return usage_error(eb.msg);
    if (o.version) {
        printf("tarn %s\n", CLI_VERSION);
        return 0;
    }
    if (o.help || !o.command || strcmp(o.command, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, o.command) == 0) cmd = &commands[i];
    if (!cmd) {
        if (strcmp(o.command, "serve") == 0) return usage_error("'serve' is not part of the client");
        snprintf(msg, sizeof msg, "unknown command '%.200s'", o.command);
        return usage_error(msg);
    }
    unsigned extra = o.seen & ~(CLI_OPT_GLOBAL | cmd->options);
    if (extra) {
        snprintf(msg, sizeof msg, "option '--%s' does not apply to '%s'", option_name(extra & -extra), cmd->name);
        return usage_error(msg);
    }
    if (o.nargs < cmd->min_args || o.nargs > cmd->max_args) {
        snprintf(msg, sizeof msg, "%s arguments for '%s'", o.nargs < cmd->min_args ? "missing" : "too many",
                 cmd->name);
        return usage_error(msg);
    }

    cli_ctx ctx = {.opts = &o};
    if (cli_conn_resolve(&ctx.conn, &o, getenv("TARN_URL"), getenv("TARN_TOKEN"), CLI_TOKEN_FILE, &eb))
        return usage_error(eb.msg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_conn_free(&ctx.conn);
        return cli_fail("cannot initialise libcurl");
    }
    cli_http h;
    int status = cli_http_init(&h, &ctx.conn, &eb) ? cli_fail("%s", eb.msg) : cmd->run(&ctx, &h);
    cli_http_free(&h);
    curl_global_cleanup();
    cli_conn_free(&ctx.conn);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (status == 0) status = cli_fail("cannot write the output");
    }
    return status;
}
