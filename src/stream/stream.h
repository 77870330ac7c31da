/* stream.h - the durable log (Kinesis / SQS's job).
 *
 * A stream is an append-only sequence of records in segment files under one
 * directory. Every record gets a sequence number: 1, 2, 3, ... without gaps,
 * continuing across restarts. tarn_stream_append returns only once the
 * records are on disk (fsync'd; the directory too for a new segment), and
 * many concurrent appenders share one fsync (group commit), made by the
 * stream's own syncer thread; tarn_stream_append_async returns at once and
 * calls back instead. The on-disk
 * format and the recovery rules are documented at the top of stream.c.
 *
 * Thread safety: every function may be called from any thread, concurrently,
 * except tarn_stream_close. A reader sees only durable records.
 */
#ifndef TARN_STREAM_H
#define TARN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct tarn_stream tarn_stream;
typedef struct tarn_stream_reader tarn_stream_reader;

typedef struct tarn_stream_opts {
    size_t segment_bytes;  /* roll to a new segment past this size; 0 = 64 MiB */
    size_t max_record;     /* largest payload accepted; 0 = 1 MiB */
    int64_t min_next_seq;  /* the first sequence number is at least this (the
                              catalog's delivered checkpoint + 1), so numbers
                              never repeat even if every segment was deleted */
} tarn_stream_opts;

typedef struct tarn_record {
    const char *data;
    size_t len;
} tarn_record;

/* Opens (creating if needed) the stream in dir and recovers it: scans every
 * segment, truncates a torn or corrupt tail at the last valid frame (never
 * dropping a valid frame before it) and finds the next sequence number.
 * On success *out is owned by the caller (tarn_stream_close). */
int tarn_stream_open(const char *dir, const tarn_stream_opts *opts, tarn_stream **out, tarn_errbuf *eb);
void tarn_stream_close(tarn_stream *s);

/* Appends n records, all stamped with time ts_us (epoch microseconds), as
 * consecutive sequence numbers, and returns once they are durable.
 * *first_seq / *last_seq receive their numbers. The batch is all or nothing.
 * Errors: TARN_ETOOBIG (a record over max_record), TARN_ENOSPC (disk full:
 * nothing of this batch is kept, the stream stays usable), TARN_EIO (fsync
 * or write failed: the stream is failed, every later append fails with
 * TARN_EIO, and the server must exit non-zero), TARN_ECLOSED. */
int tarn_stream_append(tarn_stream *s, const tarn_record *recs, size_t n, int64_t ts_us, int64_t *first_seq,
                       int64_t *last_seq, tarn_errbuf *eb);

/* An append waiting to become durable (tarn_stream_append_async). The
 * caller sets done (and arg, for its own use) and keeps the waiter alive
 * until done has been called; last and next are the stream's. */
typedef struct tarn_stream_waiter tarn_stream_waiter;
struct tarn_stream_waiter {
    /* Called exactly once, from the stream's syncer thread with no lock of
     * the stream held: rc TARN_OK once every record of the append is
     * durable, TARN_EIO (msg says why) if the stream failed first. It may
     * free the waiter, and must not append to or close this stream. */
    void (*done)(tarn_stream_waiter *w, int rc, const char *msg);
    void *arg;
    int64_t last;
    tarn_stream_waiter *next;
};

/* tarn_stream_append without the wait: returns once the batch is written
 * (numbers assigned, in the file, not yet durable) and calls w->done later,
 * when it is durable or the stream failed. With n == 0 or an error (the
 * same errors as tarn_stream_append, nothing written) done is never called.
 * The syncer thread serves every waiting append with one fdatasync (group
 * commit). */
int tarn_stream_append_async(tarn_stream *s, const tarn_record *recs, size_t n, int64_t ts_us, int64_t *first_seq,
                             int64_t *last_seq, tarn_stream_waiter *w, tarn_errbuf *eb);

/* A consistent snapshot: the highest durable sequence number (0 if none yet)
 * and the total payload bytes made durable since open plus those recovered. */
void tarn_stream_stats(tarn_stream *s, int64_t *durable_seq, int64_t *durable_bytes);
/* Non-zero once an fsync or write has failed (see tarn_stream_append). */
int tarn_stream_failed(tarn_stream *s);

/* Reads durable records with sequence number > after_seq, in order. */
int tarn_stream_reader_open(tarn_stream *s, int64_t after_seq, tarn_stream_reader **out, tarn_errbuf *eb);
/* Returns 1 and fills the outputs with the next record; 0 when there is no
 * further durable record (at the moment of the call); negative on error.
 * *data stays valid until the next call or close. */
int tarn_stream_reader_next(tarn_stream_reader *r, int64_t *seq, int64_t *ts_us, const char **data, size_t *len,
                            tarn_errbuf *eb);
void tarn_stream_reader_close(tarn_stream_reader *r);

/* Deletes the segments all of whose records have seq <= upto_seq, except the
 * newest segment, which is always kept. Call only after upto_seq is
 * published in the lake. */
int tarn_stream_trim(tarn_stream *s, int64_t upto_seq, tarn_errbuf *eb);

#endif
