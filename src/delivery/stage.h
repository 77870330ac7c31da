/* stage.h - staging a batch of the log for delivery.
 *
 * A batch is the records after a checkpoint, up to a sequence number and at
 * most a byte budget; both passes over it stop by the same rule, so they
 * cover exactly the same records. Each pass writes files per UTC ingest
 * date into a staging directory outside the lake:
 *
 *   processed  <date>.ndjson   each record on one line with "_ingested_at"
 *                              and "_seq" added: the Parquet writer's input
 *              sample.ndjson   the schema sample: some of those lines, for
 *                              DuckDB to infer the batch's columns from
 *   raw        <date>.json.gz  the records as received, one per line, as
 *                              gzip members of about 1 MiB (libdeflate:
 *                              about 1.7x zlib's speed; a multi-member gzip
 *                              file is one valid gzip stream to readers)
 *
 * "_ingested_at" is staged as epoch microseconds (an integer, possibly
 * negative), not as timestamp text: DuckDB parsing the text cost 100 to 250
 * ms per million rows. The writer (writer.h) reads it as BIGINT and makes it
 * the TIMESTAMP column the lake has.
 *
 * A third kind, TARN_STAGE_SCHEMA, is the processed pass without its
 * <date>.ndjson files: the parts (dates, sequence ranges, rows) and the
 * schema sample, exactly as the processed pass gives them. The delivery
 * runs it first and converts the batch straight from the log (scan.h); it
 * stages the lines only when that way stops.
 *
 * The passes are independent: the delivery's raw worker runs the raw
 * one later, over records the processed zone has already published
 * (delivery.h).
 *
 * Threads. The processed pass may use several threads (the delivery gives it
 * DuckDB's thread count): formatting and noting pairs cost 0.4 to 0.7 s per
 * 400 MB on one core. The calling thread reads the log (each frame's CRC is
 * checked there), decides where the batch stops, each record's date and
 * which records the head and the spread of the sample hold (all in log
 * order, exactly as with one thread), and copies the records into chunks of
 * about 2 MiB: chunk i goes to worker i mod threads, each worker with at most
 * four chunks in flight (the reader waits for one to come back), so memory
 * stays bounded and the output is the same from run to run. Each worker
 * writes its records to files of its own, <date>.<worker>.ndjson, notes
 * pairs in a tracker of its own and samples the records new to that
 * tracker into sample.<worker>.ndjson; the reader writes the head itself to
 * sample.ndjson. So a part is one file per worker that got records of its
 * date (tarn_stage_part.paths), and the sample is several files: the head,
 * then the workers' in worker order, worker k's first chunk being chunk k,
 * so that reading them in list order sees the head first and log order as
 * far as it can. A pair first seen by two workers is sampled twice: the
 * sample only gets bigger. With one thread there are no workers: the files
 * are <date>.ndjson and sample.ndjson as above.
 *
 * Why a schema sample: DuckDB's JSON reader infers types from the first
 * 20,480 records only, and a write given those columns silently drops keys
 * it was not told of (and rounds a 2.5 into a BIGINT column). Inferring
 * from every record took 6 s for 400 MB. So the processed pass, which reads
 * every record anyway, notes which (path, kind) pairs the batch holds. A
 * path is the keys from the record's root, with one step for "element of an
 * array"; keys are compared byte for byte as written (so two spellings of
 * one name are two paths: more records sampled, never fewer). The kinds
 * split values as DuckDB types them: object, array, boolean, null, integer
 * 0 .. 2^63-1, integer 2^63 .. 2^64-1, integer -2^63 .. -1, -0, any other
 * integer, other number, and string. As DuckDB also types strings by their
 * text (DATE, TIME, TIMESTAMP, UUID), a string is one kind if it cannot be
 * any of those (told by its first byte, and for a-f by its length) and one
 * kind per length (0 .. 62, 63 or more) if it might be.
 *
 * The sample holds processed lines, in log order (with several threads:
 * within each of its files):
 *   - the first TARN_STAGE_SAMPLE_HEAD records, so that DuckDB's detection
 *     of string types sees typical values;
 *   - every record showing a pair that no earlier record of the batch did
 *     (with several threads: no earlier record of its worker's);
 *   - up to TARN_STAGE_SAMPLE_SPREAD more, evenly spread over the rest of
 *     the batch as far as upto_seq and max_bytes let the head guess its
 *     size, so that string detection sees later values too.
 * So every key and every kind of value of the batch is in the sample, first
 * appearances in their order, and the delivery infers from the sample alone,
 * read whole: about 40 ms, where DuckDB's own sample took 100 to 250 ms a
 * batch (noting the pairs costs about 0.1 s per 400 MB of records built
 * alike, up to 0.35 s for records of many shapes). What the sample cannot
 * promise is DuckDB's guess of a string type from values of one kind:
 * "2025-01-02" and "02-01-2025" are one kind here (plain text among dates,
 * or a timestamp among dates, are not). A later value that does not fit the
 * guessed type then fails the write, which the delivery retries inferring
 * from every record, or, where DuckDB casts leniently, is converted (an
 * upper-case UUID among lower-case ones is stored in lower case), as it was
 * with DuckDB's own sample.
 *
 * Limits. Each tracker (one per thread) keeps at most about 12 MiB, and past
 * any limit the sample only gets bigger, never loses a pair:
 *   - TARN_STAGE_SHAPE_MAX_PATHS distinct paths and
 *     TARN_STAGE_SHAPE_MAX_KEY_BYTES bytes of their keys; once either is
 *     reached, a record with a path not yet known goes into the sample;
 *   - a record nested deeper than TARN_STAGE_SHAPE_MAX_DEPTH (the largest
 *     limits.max_depth the ingest allows), or one that does not parse (the
 *     ingest validated it, so that would be a bug), goes into the sample;
 *   - a sample past TARN_STAGE_SAMPLE_MAX_BYTES (all its files together)
 *     is deleted and the result has none: the delivery then infers from
 *     every record.
 * Chunks in flight add at most 8 MiB per worker (or four times the largest
 * record, if that is larger).
 */
#ifndef TARN_STAGE_H
#define TARN_STAGE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "stream/stream.h"

/* TARN_STAGE_SCHEMA is the processed pass without its lines: the parts
 * (dates, sequence ranges and rows; no paths) and the schema sample only,
 * for a batch the delivery converts straight from the log (scan.h). */
enum tarn_stage_kind { TARN_STAGE_PROCESSED, TARN_STAGE_SCHEMA, TARN_STAGE_RAW };

/* The schema sample's sizes and limits (see above). */
#define TARN_STAGE_SAMPLE_HEAD 2048
#define TARN_STAGE_SAMPLE_SPREAD 1024
#define TARN_STAGE_SAMPLE_MAX_BYTES ((size_t)32 << 20)
#define TARN_STAGE_SHAPE_MAX_PATHS 65536
#define TARN_STAGE_SHAPE_MAX_KEY_BYTES ((size_t)8 << 20)
#define TARN_STAGE_SHAPE_MAX_DEPTH 1024

/* Threads of the processed pass, at most; and so files of the sample, at
 * most: the head's and one per thread. */
#define TARN_STAGE_MAX_THREADS 8
#define TARN_STAGE_MAX_SAMPLES (TARN_STAGE_MAX_THREADS + 1)

typedef struct tarn_stage_part {
    char date[11];               /* YYYY-MM-DD */
    int64_t first_seq, last_seq; /* of the records of this date */
    int64_t rows;                /* over all of its files */
    size_t npaths;               /* 1 .. threads: only threads that got records of this date have a file */
    char paths[TARN_STAGE_MAX_THREADS][PATH_MAX]; /* the staged files (raw pass: always one) */
} tarn_stage_part;

typedef struct tarn_stage_result {
    tarn_stage_part *parts; /* one per date, in order of first appearance */
    size_t nparts;
    int64_t last_seq;       /* the last record staged (from_seq if none) */
    int64_t bytes;          /* payload bytes staged */
    /* Processed pass only: */
    size_t nsamples;        /* the schema sample's files; 0 if none (a limit
                               was passed: infer from every record) */
    char sample_paths[TARN_STAGE_MAX_SAMPLES][PATH_MAX]; /* to be read in this order: the head first */
    int64_t sample_rows;    /* over all of its files */
    int ubigint_values;     /* some integer is above BIGINT's range but
                               within UBIGINT's (DuckDB infers HUGEINT) */
} tarn_stage_result;

/* Stages records after from_seq, up to upto_seq, stopping once max_bytes of
 * payload are staged, into dir (which must exist). The processed pass uses
 * threads threads (at most TARN_STAGE_MAX_THREADS; 1: the calling thread
 * alone), the raw pass always the calling thread alone. Files are written but
 * not fsync'd: a processed file never enters the lake (it is rebuilt from
 * the log after a crash), and the delivery fsyncs each raw file as it moves
 * it into the lake. Syncing 400 MB of processed staging took 1.3 s. On
 * success *out is owned by the caller (tarn_stage_result_free); on failure
 * nothing needs freeing, every thread has ended, and files written so far are
 * left in dir for the caller to remove with it. TARN_ENOSPC when the disk is
 * full (on any thread: its message is the one in eb). */
int tarn_stage_batch(tarn_stream *s, enum tarn_stage_kind kind, int64_t from_seq, int64_t upto_seq, size_t max_bytes,
                     int threads, const char *dir, tarn_stage_result *out, tarn_errbuf *eb);
void tarn_stage_result_free(tarn_stage_result *r);

#endif
