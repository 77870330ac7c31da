/* ingest.c - `tarn ingest DB.TABLE [FILE|-]`.
 *
 * Reads the input in CLI_READ_CHUNK pieces, cuts it into batches of whole
 * records (record_stream.c) and sends each batch as one NDJSON request over
 * a keep-alive connection. The server accepts a request whole or not at all,
 * so after a failure every batch before it is ingested and nothing after it
 * is; the error line says how many records that is.
 *
 * Retries: a batch is sent again, after 0.5, 1, 2 and 4 s, when the
 * connection was refused or dropped or the server answered 503 (starting or
 * shutting down). A dropped connection after the request was sent could mean
 * the server stored the batch and the reply was lost, so a retry then may
 * ingest a batch twice: delivery is at least once, as with any HTTP client.
 * Timeouts are not retried: the server is slow, not gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_internal.h"

#define CLI_READ_CHUNK ((size_t)64 << 10)
#define CLI_INGEST_RETRIES 4
#define CLI_INGEST_TIMEOUT_S 120L
#define CLI_SERVER_RECORD_MAX ((size_t)1 << 20) /* the server's default per-record limit */

typedef struct ingest {
    cli_http *http;
    char db[CLI_NAME_MAX + 1], table[CLI_NAME_MAX + 1];
    char path[2 * CLI_NAME_MAX + 32];
    int64_t first_seq, last_seq;
} ingest;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "record 5004 (line 5010)" for the server's 0-based index in batch b. */
static void record_location(const cli_batch *b, size_t index, char *out, size_t outsz)
{
    snprintf(out, outsz, "record %lld (line %lld)", (long long)(b->first_record + (int64_t)index + 1),
             (long long)b->lines[index]);
}

/* Where a 400 or 413 without an index lies: the first record over the
 * server's default size limit if there is one, else the batch's range. */
static void batch_location(const cli_batch *b, char *out, size_t outsz)
{
    for (size_t i = 0; i < b->count; i++) {
        size_t end = i + 1 < b->count ? b->offsets[i + 1] : b->committed;
        size_t size = end - b->offsets[i] - 1;
        if (size > CLI_SERVER_RECORD_MAX) {
            char sz[32];
            cli_format_bytes((int64_t)size, sz, sizeof sz);
            snprintf(out, outsz, "record %lld at line %lld is %s", (long long)(b->first_record + (int64_t)i + 1),
                     (long long)b->lines[i], sz);
            return;
        }
    }
    snprintf(out, outsz, "in records %lld..%lld, lines %lld..%lld", (long long)b->first_record + 1,
             (long long)(b->first_record + (int64_t)b->count), (long long)b->lines[0],
             (long long)b->lines[b->count - 1]);
}

static int ingest_send(void *ctx, const cli_batch *b, tarn_errbuf *eb)
{
    ingest *in = ctx;
    cli_http *h = in->http;
    int rc;
    for (int attempt = 0;; attempt++) {
        int retryable = 0;
        rc = cli_http_request(h, "POST", in->path, "application/x-ndjson", "application/json", b->body.data,
                              b->committed, CLI_INGEST_TIMEOUT_S, &retryable, eb);
        if (rc == TARN_OK && h->status == 503) retryable = 1;
        else if (rc == TARN_OK) break;
        if (!retryable || attempt == CLI_INGEST_RETRIES) break;
        sleep_ms(500L << attempt);
    }
    if (rc) return rc;

    if (h->status / 100 != 2) {
        char msg[384], loc[192] = "";
        int64_t index;
        cli_reply_error(h->status, h->reply.data, h->reply.len, msg, sizeof msg, &index);
        if (index >= 0 && (size_t)index < b->count) {
            record_location(b, (size_t)index, loc, sizeof loc);
            return tarn_errbuf_set(eb, TARN_EINVAL, "%ld: %s: %s", h->status, loc, cli_strip_record_prefix(msg));
        }
        if (h->status == 400 || h->status == 413) {
            batch_location(b, loc, sizeof loc);
            return tarn_errbuf_set(eb, TARN_EINVAL, "%ld: %s (%s)", h->status, msg, loc);
        }
        if (h->status == 401)
            return tarn_errbuf_set(eb, TARN_EAUTH, "401: %s " CLI_TOKEN_HINT, msg);
        return tarn_errbuf_set(eb, TARN_EIO, "%ld: %s", h->status, msg);
    }

    tarn_errbuf perr;
    json_t *reply = cli_parse_json(h->reply.data, h->reply.len, &perr);
    json_t *first = json_object_get(reply, "first_seq"), *last = json_object_get(reply, "last_seq");
    if (!json_is_integer(first) || !json_is_integer(last)) {
        json_decref(reply);
        return tarn_errbuf_set(eb, TARN_EJSON, "the server accepted records %lld..%lld but its reply is not "
                               "{\"records\", \"first_seq\", \"last_seq\"}",
                               (long long)b->first_record + 1, (long long)(b->first_record + (int64_t)b->count));
    }
    if (in->first_seq == 0) in->first_seq = (int64_t)json_integer_value(first);
    in->last_seq = (int64_t)json_integer_value(last);
    json_decref(reply);
    return TARN_OK;
}

int cli_cmd_ingest(cli_ctx *ctx, cli_http *h)
{
    const cli_opts *o = ctx->opts;
    tarn_errbuf eb = {{0}};
    ingest in;
    memset(&in, 0, sizeof in);
    in.http = h;
    if (cli_parse_table_name(o->args[0], in.db, in.table, &eb)) {
        fprintf(stderr, "tarn: %s\n", eb.msg);
        return 2;
    }
    snprintf(in.path, sizeof in.path, "/v1/tables/%s/%s/records", in.db, in.table);

    const char *file = o->nargs > 1 ? o->args[1] : "-";
    int fd = STDIN_FILENO;
    if (strcmp(file, "-") != 0) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return cli_fail("cannot open %s: %s", file, strerror(errno));
    } else if (o->nargs < 2 && isatty(STDIN_FILENO)) {
        fprintf(stderr, "tarn: no input: give a FILE, or pipe NDJSON into 'tarn ingest %s -'\n", o->args[0]);
        return 2;
    }

    int status = 1;
    char *chunk = malloc(CLI_READ_CHUNK);
    cli_batch batch;
    cli_splitter split;
    int rc = cli_batch_init(&batch, CLI_BATCH_RECORDS, CLI_BATCH_BYTES, CLI_RECORD_MAX, ingest_send, &in);
    if (rc || !chunk) {
        cli_fail("out of memory");
        goto out;
    }
    cli_splitter_init(&split);

    for (;;) {
        ssize_t n = read(fd, chunk, CLI_READ_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = tarn_errbuf_set(&eb, TARN_EIO, "cannot read %s: %s", strcmp(file, "-") ? file : "stdin",
                                 strerror(errno));
            break;
        }
        if (n == 0) {
            rc = cli_splitter_finish(&split, &batch, &eb);
            break;
        }
        if ((rc = cli_splitter_feed(&split, &batch, chunk, (size_t)n, &eb))) break;
    }
    if (rc) {
        cli_fail("%s; %lld record%s ingested before the failure", eb.msg, (long long)batch.sent,
                 batch.sent == 1 ? " was" : "s were");
        goto out;
    }

    if (batch.sent == 0)
        printf("ingested 0 records into %s.%s (the input holds none)\n", in.db, in.table);
    else if (in.first_seq == in.last_seq)
        printf("ingested %lld record%s into %s.%s (seq %lld)\n", (long long)batch.sent, batch.sent == 1 ? "" : "s",
               in.db, in.table, (long long)in.first_seq);
    else
        printf("ingested %lld record%s into %s.%s (seq %lld..%lld)\n", (long long)batch.sent,
               batch.sent == 1 ? "" : "s", in.db, in.table, (long long)in.first_seq, (long long)in.last_seq);
    status = 0;

out:
    cli_batch_free(&batch);
    free(chunk);
    if (fd != STDIN_FILENO) close(fd);
    return status;
}
