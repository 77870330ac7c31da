/* record_stream.c - cutting `tarn ingest` input into batches of whole records.
 *
 * The input is read in fixed-size chunks and fed to a splitter: a state
 * machine that looks at each byte once and never looks back, so a record may
 * be cut across any number of chunks. The splitter writes each record's bytes
 * straight into a batch (cli_batch), which holds the complete records not yet
 * sent plus the one being read. Memory is therefore one batch (4 MiB) plus the
 * read buffer, whatever the size of the input.
 *
 * Input formats, decided by the first byte that is not white space (a UTF-8
 * byte-order mark before it is skipped):
 *
 *   '['   A JSON array. Each top-level element is a record. The splitter
 *         tracks strings, escapes and bracket depth to find the ',' and ']'
 *         that separate elements; a raw CR or LF outside a string becomes a
 *         space, so a pretty-printed element becomes one NDJSON line.
 *
 *   other NDJSON: each line is a record, blank lines are skipped, CR becomes
 *         a space. One exception keeps `jq .` output and a pretty-printed
 *         single object working: if the first record's first line ends
 *         inside an object or array, the input is read as JSON values spread
 *         over lines (MULTILINE), where a record ends when its brackets
 *         balance and line breaks inside it become spaces. Deciding once, at
 *         the first record, means a truncated line in a real NDJSON file
 *         still fails as that one line instead of swallowing the rest.
 *
 * The splitter does not validate JSON; the server does, and its error names
 * the record (index in the batch) which the client maps back to the input's
 * record number and line. The splitter only refuses what it cannot cut: array
 * syntax between elements, and a raw line break inside a string in an array
 * (invalid JSON that would otherwise split a record in two).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"

enum split_state {
    SPLIT_START,      /* before the first byte that is not white space */
    SPLIT_BETWEEN,    /* NDJSON / MULTILINE: between records */
    SPLIT_RECORD,     /* NDJSON / MULTILINE: inside a record */
    SPLIT_ELEM_NEXT,  /* array: after '[' or ',', expecting an element */
    SPLIT_ELEM,       /* array: inside an element */
    SPLIT_ELEM_AFTER, /* array: after an object or array element, expecting ',' or ']' */
    SPLIT_DONE,       /* array: after the closing ']' */
};

/* ------------------------------------------------------------ batch */

int cli_batch_init(cli_batch *b, size_t max_records, size_t max_bytes, size_t max_record_bytes,
                   cli_batch_send_fn send, void *send_ctx)
{
    memset(b, 0, sizeof *b);
    /* Complete records stay under max_bytes while a record is being added
     * (see cli_batch_append); alone, a record may reach max_record_bytes. */
    tarn_buf_init(&b->body, (max_bytes > max_record_bytes ? max_bytes : max_record_bytes) + 2);
    b->max_records = max_records ? max_records : 1;
    b->max_bytes = max_bytes;
    b->max_record_bytes = max_record_bytes;
    b->cur_line = 1;
    b->send = send;
    b->send_ctx = send_ctx;
    b->lines = malloc(b->max_records * sizeof *b->lines);
    b->offsets = malloc(b->max_records * sizeof *b->offsets);
    if (!b->lines || !b->offsets) return TARN_ENOMEM;
    return TARN_OK;
}

void cli_batch_free(cli_batch *b)
{
    tarn_buf_free(&b->body);
    free(b->lines);
    free(b->offsets);
    b->lines = NULL;
    b->offsets = NULL;
}

void cli_batch_begin_record(cli_batch *b, int64_t line) { b->cur_line = line; }

int cli_batch_flush(cli_batch *b, tarn_errbuf *eb)
{
    if (b->count == 0) return TARN_OK;
    int rc = b->send(b->send_ctx, b, eb);
    if (rc) return rc;
    b->sent += (int64_t)b->count;
    b->first_record += (int64_t)b->count;
    /* Keep the record being read: move it to the front. */
    size_t partial = b->body.len - b->committed;
    memmove(b->body.data, b->body.data + b->committed, partial);
    b->body.len = partial;
    b->body.data[partial] = '\0';
    b->committed = 0;
    b->count = 0;
    return TARN_OK;
}

int cli_batch_append(cli_batch *b, const char *p, size_t n, tarn_errbuf *eb)
{
    int rc;
    /* +1 for the record's '\n'. Sending as soon as the record cannot fit
     * (rather than when it ends) keeps a big record from doubling memory. */
    if (b->count > 0 && b->body.len + n + 1 > b->max_bytes && (rc = cli_batch_flush(b, eb))) return rc;
    size_t partial = b->body.len - b->committed;
    if (n > b->max_record_bytes - partial)
        return tarn_errbuf_set(eb, TARN_ETOOBIG, "record %lld (line %lld) is larger than %zu MiB",
                               (long long)(b->first_record + (int64_t)b->count + 1), (long long)b->cur_line,
                               b->max_record_bytes >> 20);
    if ((rc = tarn_buf_append(&b->body, p, n))) return tarn_errbuf_set(eb, rc, "out of memory");
    return TARN_OK;
}

int cli_batch_end_record(cli_batch *b, tarn_errbuf *eb)
{
    int rc = tarn_buf_append_char(&b->body, '\n');
    if (rc) return tarn_errbuf_set(eb, rc, "out of memory");
    b->lines[b->count] = b->cur_line;
    b->offsets[b->count] = b->committed;
    b->count++;
    b->committed = b->body.len;
    if (b->count >= b->max_records || b->committed >= b->max_bytes) return cli_batch_flush(b, eb);
    return TARN_OK;
}

/* ------------------------------------------------------------ splitter */

void cli_splitter_init(cli_splitter *s)
{
    memset(s, 0, sizeof *s);
    s->state = SPLIT_START;
    s->line = 1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void begin_record(cli_splitter *s, cli_batch *b, int state)
{
    s->state = state;
    s->in_string = 0;
    s->escape = 0;
    s->depth = 0;
    cli_batch_begin_record(b, s->line);
}

static int end_record(cli_splitter *s, cli_batch *b, int next_state, tarn_errbuf *eb)
{
    s->state = next_state;
    s->records++;
    return cli_batch_end_record(b, eb);
}

int cli_splitter_feed(cli_splitter *s, cli_batch *b, const char *p, size_t n, tarn_errbuf *eb)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    size_t run = 0; /* while in a record: start of the bytes not yet copied to the batch */
    int rc;

/* Copies the pending bytes of the record, up to (not including) p[end]. */
#define COPY_RUN(end)                                                                       \
    do {                                                                                    \
        if ((end) > run && (rc = cli_batch_append(b, p + run, (end) - run, eb))) return rc; \
        run = (end);                                                                        \
    } while (0)

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
    again:
        switch (s->state) {
        case SPLIT_START:
            if (s->offset == s->bom && s->bom < 3 && c == bom[s->bom]) {
                s->bom++;
                break;
            }
            if (s->bom > 0 && s->bom < 3)
                return tarn_errbuf_set(eb, TARN_EJSON, "input starts with a broken UTF-8 byte-order mark");
            if (is_space(c)) break;
            if (c == '[') {
                s->format = CLI_INPUT_ARRAY;
                s->state = SPLIT_ELEM_NEXT;
                break;
            }
            s->format = CLI_INPUT_NDJSON;
            s->state = SPLIT_BETWEEN;
            goto again;

        case SPLIT_BETWEEN:
            if (is_space(c)) break;
            begin_record(s, b, SPLIT_RECORD);
            run = i;
            goto again;

        case SPLIT_ELEM_NEXT:
            if (is_space(c)) break;
            if (c == ']') {
                if (s->after_comma)
                    return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: expected a record after ',', found ']'",
                                           (long long)s->line);
                s->state = SPLIT_DONE;
                break;
            }
            if (c == ',')
                return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: expected a record, found ','", (long long)s->line);
            begin_record(s, b, SPLIT_ELEM);
            run = i;
            goto again;

        case SPLIT_ELEM_AFTER:
            if (is_space(c)) break;
            if (c == ',') {
                s->after_comma = 1;
                s->state = SPLIT_ELEM_NEXT;
                break;
            }
            if (c == ']') {
                s->state = SPLIT_DONE;
                break;
            }
            return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: expected ',' or ']' after record %lld",
                                   (long long)s->line, (long long)s->records);

        case SPLIT_DONE:
            if (is_space(c)) break;
            return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: unexpected data after the array's closing ']'",
                                   (long long)s->line);

        case SPLIT_RECORD:
        case SPLIT_ELEM:
            if (s->in_string) {
                if (s->escape) {
                    s->escape = 0;
                } else if (c == '\\') {
                    s->escape = 1;
                } else if (c == '"') {
                    s->in_string = 0;
                } else if (c == '\n') {
                    /* Invalid JSON: a string cannot hold a raw line break. */
                    if (s->state == SPLIT_ELEM)
                        return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: line break inside a string in record %lld",
                                               (long long)s->line, (long long)s->records + 1);
                    /* An NDJSON line ends here anyway; the server will say
                     * the string is unterminated. */
                    COPY_RUN(i);
                    if ((rc = end_record(s, b, SPLIT_BETWEEN, eb))) return rc;
                    s->format_decided = 1;
                }
                break;
            }
            switch (c) {
            case '"':
                s->in_string = 1;
                break;
            case '{':
            case '[':
                s->depth++;
                break;
            case '}':
            case ']':
                if (s->depth == 0) {
                    if (s->state == SPLIT_ELEM && c == ']') { /* the array's end */
                        COPY_RUN(i);
                        if ((rc = end_record(s, b, SPLIT_DONE, eb))) return rc;
                    }
                    break; /* unbalanced: left for the server to report */
                }
                if (--s->depth > 0) break;
                if (s->state == SPLIT_ELEM) {
                    COPY_RUN(i + 1);
                    if ((rc = end_record(s, b, SPLIT_ELEM_AFTER, eb))) return rc;
                } else if (s->format == CLI_INPUT_MULTILINE) {
                    COPY_RUN(i + 1);
                    if ((rc = end_record(s, b, SPLIT_BETWEEN, eb))) return rc;
                }
                break;
            case ',':
                if (s->state == SPLIT_ELEM && s->depth == 0) {
                    COPY_RUN(i);
                    if ((rc = end_record(s, b, SPLIT_ELEM_NEXT, eb))) return rc;
                    s->after_comma = 1;
                }
                break;
            case '\n':
                if (s->state == SPLIT_RECORD && !s->format_decided) {
                    s->format_decided = 1;
                    if (s->depth > 0) s->format = CLI_INPUT_MULTILINE;
                }
                if (s->state == SPLIT_RECORD && (s->format == CLI_INPUT_NDJSON || s->depth == 0)) {
                    COPY_RUN(i);
                    if ((rc = end_record(s, b, SPLIT_BETWEEN, eb))) return rc;
                    break;
                }
                /* A line break inside a record becomes a space, like CR. */
                /* fall through */
            case '\r':
                COPY_RUN(i);
                if ((rc = cli_batch_append(b, " ", 1, eb))) return rc;
                run = i + 1;
                break;
            default:
                break;
            }
            break;
        }
        if (c == '\n') s->line++;
        s->offset++;
    }
    if (s->state == SPLIT_RECORD || s->state == SPLIT_ELEM) COPY_RUN(n);
    return TARN_OK;
#undef COPY_RUN
}

int cli_splitter_finish(cli_splitter *s, cli_batch *b, tarn_errbuf *eb)
{
    int rc;
    switch (s->state) {
    case SPLIT_START:
        if (s->bom > 0 && s->bom < 3)
            return tarn_errbuf_set(eb, TARN_EJSON, "input starts with a broken UTF-8 byte-order mark");
        break;
    case SPLIT_RECORD:
        s->format_decided = 1;
        if ((rc = end_record(s, b, SPLIT_BETWEEN, eb))) return rc;
        break;
    case SPLIT_ELEM:
    case SPLIT_ELEM_NEXT:
    case SPLIT_ELEM_AFTER:
        return tarn_errbuf_set(eb, TARN_EJSON, "line %lld: input ends inside the JSON array (no closing ']')",
                               (long long)s->line);
    default:
        break;
    }
    return cli_batch_flush(b, eb);
}
