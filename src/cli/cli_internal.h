/* cli_internal.h - the parts of the client shared between its files and
 * exposed to tests/unit/test_cli.c. Nothing outside src/cli/ and that test
 * includes this header.
 *
 * Files:
 *   cli.c           option parsing, usage, dispatch, and the small commands
 *                   (query, tables, describe, flush, status)
 *   http.c          one keep-alive libcurl handle, error replies
 *   record_stream.c cutting ingest input into batches of whole records
 *   ingest.c        the ingest command: read, split, send, retry, report
 *   table.c         the aligned text tables every command prints
 */
#ifndef TARN_CLI_INTERNAL_H
#define TARN_CLI_INTERNAL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

#define CLI_VERSION "0.1.0"
#define CLI_DEFAULT_URL "http://127.0.0.1:8470"
#define CLI_TOKEN_FILE "tarn-data/admin.token" /* relative to the working directory */

#define CLI_NAME_MAX 128          /* database and table names, as the server checks them */
#define CLI_MAX_ARGS 4            /* positional arguments after the subcommand */
#define CLI_CELL_WIDTH 60         /* table cells longer than this are cut with "…" */
#define CLI_REPLY_MAX ((size_t)512 << 20)
/* Appended to a 401 reply's message. */
#define CLI_TOKEN_HINT "(give --token, set TARN_TOKEN, or run where " CLI_TOKEN_FILE " is)"

/* Batches sent by `tarn ingest`: well under the server's default limits of
 * 10,000 records and 10 MiB per request. */
#define CLI_BATCH_RECORDS 5000
#define CLI_BATCH_BYTES ((size_t)4 << 20)
/* The largest single record the client will hold. The server refuses records
 * over 1 MiB by default (413) and that reply is what the user should see, so
 * this cap only bounds memory when the input is not what it seems (a 1 GB
 * "record" with no line breaks). */
#define CLI_RECORD_MAX ((size_t)16 << 20)

/* ------------------------------------------------------------ options */

enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_CSV, CLI_FORMAT_JSON };

/* Bits of cli_opts.seen, one per option that takes a value. */
enum {
    CLI_OPT_URL = 1 << 0,
    CLI_OPT_TOKEN = 1 << 1,
    CLI_OPT_FORMAT = 1 << 2,
    CLI_OPT_DATABASE = 1 << 3,
    CLI_OPT_GLOBAL = CLI_OPT_URL | CLI_OPT_TOKEN,
};

/* The command line, parsed. Strings point into argv. */
typedef struct cli_opts {
    const char *command;             /* first positional argument; NULL if none */
    const char *args[CLI_MAX_ARGS];  /* positional arguments after it */
    int nargs;
    const char *url;                 /* --url, NULL if not given */
    const char *token;               /* --token, NULL if not given */
    const char *database;            /* --database, validated */
    enum cli_format format;          /* --format, CLI_FORMAT_TABLE if not given */
    unsigned seen;                   /* CLI_OPT_* of the options given */
    int help, version;
} cli_opts;

/* Parses argv[1..argc). Options may come anywhere (before, between or after
 * positional arguments) as "--name value" or "--name=value"; "--" ends them.
 * An argument is an option only if it is "-h" or starts with "--" and a
 * letter, so SQL starting with "-- comment" stays a positional argument.
 * Returns 0, or TARN_EINVAL (a usage error) with the reason in eb. */
int cli_parse_args(int argc, char **argv, cli_opts *o, tarn_errbuf *eb);

/* Where to connect and with which token; both strings owned (cli_conn_free). */
typedef struct cli_conn {
    char *url;   /* without a trailing '/' */
    char *token; /* NULL: send no Authorization header */
} cli_conn;

/* Resolves the URL (--url, else env_url, else CLI_DEFAULT_URL; "host:port"
 * gets "http://") and the token (--token, else env_token, else the trimmed
 * contents of token_path if it exists). Empty values count as unset.
 * env_url, env_token and token_path may be NULL. Returns 0 or TARN_EINVAL
 * (bad URL, token with characters an HTTP header cannot carry). The error
 * text never contains the token. */
int cli_conn_resolve(cli_conn *c, const cli_opts *o, const char *env_url, const char *env_token,
                     const char *token_path, tarn_errbuf *eb);
void cli_conn_free(cli_conn *c);

/* Splits "DB.TABLE" into db and table (each CLI_NAME_MAX + 1 bytes) and
 * checks both names as the server does. Returns 0 or TARN_EINVAL. */
int cli_parse_table_name(const char *arg, char *db, char *table, tarn_errbuf *eb);

/* ------------------------------------------------------------ HTTP */

typedef struct cli_http {
    void *curl;            /* CURL *, reused for every request (keep-alive) */
    const char *url;       /* base URL, borrowed from cli_conn */
    char *auth_header;     /* "Authorization: Bearer ..." or NULL; owned */
    long status;           /* HTTP status of the last reply */
    tarn_buf reply;        /* body of the last reply, at most CLI_REPLY_MAX */
    int reply_too_big;
    char curl_error[256];  /* libcurl's detail for the last failure */
} cli_http;

int cli_http_init(cli_http *h, const cli_conn *conn, tarn_errbuf *eb);
void cli_http_free(cli_http *h);

/* Sends one request to conn->url + path and reads the whole reply into
 * h->reply and h->status. body may be NULL for GET. Returns 0 when a reply
 * arrived, whatever its status; otherwise a negative code with one line in
 * eb ("cannot connect to URL: Connection refused (is 'tarn serve' running?)")
 * and *retryable set if sending again may succeed (refused or dropped
 * connection). retryable may be NULL. */
int cli_http_request(cli_http *h, const char *method, const char *path, const char *content_type,
                     const char *accept, const char *body, size_t len, long timeout_s, int *retryable,
                     tarn_errbuf *eb);

/* Describes an error reply in one line: the server's error.message, else
 * the first line of a body that is not the documented JSON, else a phrase
 * for the status. Line breaks and runs of white space become one space.
 * *index receives error.index (the 0-based record in the request), or -1. */
void cli_reply_error(long status, const char *body, size_t len, char *msg, size_t msgsz, int64_t *index);

/* Skips a leading "record N at byte M: " or "record N: " in a server message
 * (whose N counts within one request, not in the user's file). */
const char *cli_strip_record_prefix(const char *msg);

/* Parses a JSON reply; integers too big for int64 fall back to doubles
 * rather than failing. Returns a new reference or NULL with eb filled. */
json_t *cli_parse_json(const char *body, size_t len, tarn_errbuf *eb);

/* ------------------------------------------------------------ ingest input */

typedef struct cli_batch cli_batch;

/* Called with a full batch: body[0 .. committed) holds `count` records, one
 * per line. Returns 0 once the server has them, or an error (eb filled),
 * which stops the ingest. */
typedef int (*cli_batch_send_fn)(void *ctx, const cli_batch *b, tarn_errbuf *eb);

/* Complete records waiting to be sent, followed by the record being read.
 * A batch never holds more than max_records records, nor more than
 * max_bytes bytes unless a single record is larger; a single record larger
 * than max_record_bytes is an error. */
struct cli_batch {
    tarn_buf body;
    size_t committed;        /* bytes of complete records */
    size_t count;            /* complete records */
    size_t max_records, max_bytes, max_record_bytes;
    int64_t first_record;    /* 0-based input number of body's first record */
    int64_t *lines;          /* input line where each complete record starts */
    size_t *offsets;         /* body offset of each complete record */
    int64_t cur_line;        /* line where the record being read starts */
    int64_t sent;            /* records the send callback accepted */
    cli_batch_send_fn send;
    void *send_ctx;
};

/* Sets up an empty batch; cli_batch_free releases it even on failure. */
int cli_batch_init(cli_batch *b, size_t max_records, size_t max_bytes, size_t max_record_bytes,
                   cli_batch_send_fn send, void *send_ctx);
void cli_batch_free(cli_batch *b);
/* A record starts at input line `line`. */
void cli_batch_begin_record(cli_batch *b, int64_t line);
/* Adds bytes to the record being read. If they would not fit in the batch,
 * the complete records are sent first. */
int cli_batch_append(cli_batch *b, const char *p, size_t n, tarn_errbuf *eb);
/* Ends the record being read; sends the batch if it is now full. */
int cli_batch_end_record(cli_batch *b, tarn_errbuf *eb);
/* Sends the complete records, if any. */
int cli_batch_flush(cli_batch *b, tarn_errbuf *eb);

enum cli_input_format {
    CLI_INPUT_UNKNOWN,   /* nothing but white space so far */
    CLI_INPUT_NDJSON,    /* one record per line */
    CLI_INPUT_MULTILINE, /* JSON values spread over lines, e.g. `jq .` output */
    CLI_INPUT_ARRAY,     /* one JSON array; each element is a record */
};

/* Cuts a byte stream into records and writes each into a batch as one
 * NDJSON line. See record_stream.c for the rules. */
typedef struct cli_splitter {
    enum cli_input_format format;
    int state;
    int in_string, escape;
    int format_decided; /* NDJSON vs MULTILINE is decided at the first record's first line break */
    int after_comma;    /* array: the last separator was ',' */
    int64_t depth;      /* open brackets inside the current record */
    int64_t line;       /* 1-based line of the next byte */
    int64_t offset;     /* bytes consumed */
    int64_t records;    /* records ended */
    int bom;            /* bytes of a leading UTF-8 byte-order mark seen */
} cli_splitter;

void cli_splitter_init(cli_splitter *s);
/* Consumes n bytes (any chunking). Errors: input that cannot be cut into
 * records (array syntax, a line break inside a string in an array), a
 * record over the batch's max_record_bytes, or the send callback's error. */
int cli_splitter_feed(cli_splitter *s, cli_batch *b, const char *p, size_t n, tarn_errbuf *eb);
/* Ends the input: completes the last record and sends the last batch. An
 * unclosed array is an error and its last batch is not sent. */
int cli_splitter_finish(cli_splitter *s, cli_batch *b, tarn_errbuf *eb);

/* ------------------------------------------------------------ output */

/* Prints {"columns":[{"name","type"}...],"rows":[[...]...],"truncated":b}
 * as an aligned table: header, separator, rows; NULL as "NULL"; objects and
 * arrays as compact JSON; numeric columns right-aligned; widths counted in
 * code points; cells over max_cell code points cut with "…" (0: no limit).
 * With a noun ("row"), a footer "(N rows)" follows, and "(truncated at N
 * rows)" when the result says so. Returns 0 or TARN_EINVAL for a result of
 * the wrong shape. */
int cli_print_table(FILE *out, const json_t *result, size_t max_cell, const char *noun, tarn_errbuf *eb);

/* Appends the text of one cell: "NULL", the string itself (control
 * characters escaped), a number, true/false, or compact JSON. */
int cli_format_value(tarn_buf *out, const json_t *v);
/* The shortest text that reads back as d ("0.1", "1.0", "1e+300"). */
void cli_format_double(double d, char *out, size_t outsz);
/* Code points in s[0..n) (bytes that are not UTF-8 continuation bytes). */
size_t cli_utf8_width(const char *s, size_t n);
/* "512 B", "5.0 KiB", "1.2 GiB". */
void cli_format_bytes(int64_t n, char *out, size_t outsz);
/* "12s", "3m 4s", "2h 0m 5s", "1d 2h 3m 4s". */
void cli_format_duration(int64_t seconds, char *out, size_t outsz);

/* ------------------------------------------------------------ commands */

typedef struct cli_ctx {
    const cli_opts *opts;
    cli_conn conn;
} cli_ctx;

/* Prints "tarn: <message>" (one line; line breaks become spaces) to stderr
 * and returns 1, the failure exit status. */
int cli_fail(const char *fmt, ...) TARN_PRINTF(1, 2);

/* `tarn ingest` (ingest.c); returns the exit status. The other commands are
 * static in cli.c. */
int cli_cmd_ingest(cli_ctx *ctx, cli_http *h);

#endif
