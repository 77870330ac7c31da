/* delivery.h - from the durable log to the lake (Firehose's job).
 *
 * The delivery owns the live tables: each has its stream (durable log) and
 * a checkpoint per zone of the lake (the catalog's delivered_seq for the
 * processed zone, raw_seq for the raw zone). The processed worker watches
 * every table and delivers a batch when the records past the checkpoint
 * reach the buffer size, when the oldest of them has waited the buffer
 * interval, or when a flush asks for it; records recovered from the log at
 * start are due at once. A batch takes what waits, up to max_batch, so a
 * table that is behind catches up in larger batches:
 *
 *   1. read the batch from the log, group it by UTC ingest date and write
 *      its schema sample, outside the lake (stage.h, TARN_STAGE_SCHEMA);
 *   2. infer the batch's schema with DuckDB from the sample and widen the
 *      table's schema (schema.h);
 *   3. write one Snappy Parquet file per date with that schema, DuckDB
 *      taking the records straight from the log (scan.h). If a record holds
 *      a value that way leaves to DuckDB's JSON reader, stage the batch per
 *      date as NDJSON with _ingested_at and _seq added (TARN_STAGE_PROCESSED)
 *      and convert that with read_json instead, as every batch once was;
 *   4. fsync, rename into lake/processed/<db>/<table>/ingestion_date=D/ as
 *      <first>-<last>.parquet (names derive from the sequence range, so a
 *      replay after a crash writes the same names);
 *   5. publish the files, the schema and the new checkpoint in one catalog
 *      transaction and refresh the query view: the records are queryable.
 * A batch longer than the sample's head first tries the quick way (scan.h,
 * "Quick schema"): steps 1-2 over its first TARN_STAGE_SAMPLE_HEAD records
 * only, then step 3 over the whole batch checking that every value has a
 * kind those records had at its place; a value that does not, or a record
 * of another date, stops the scan and the batch takes the way above (and
 * the table's next few batches too).
 * The raw worker follows: whatever the processed zone has published and the
 * raw zone has not, it writes as received, gzip NDJSON, one file per date,
 * into lake/raw/<db>/<table>/ingestion_date=D/<first>-<last>.json.gz, and
 * publishes them with raw_seq in one transaction. It runs at the lowest CPU
 * priority: the archive copy never slows the conversion that makes records
 * queryable. Log segments are deleted once both zones have published all
 * their records.
 * When idle the processed worker compacts small Parquet files of a partition
 * into files of the target size (one catalog transaction swaps them) and
 * deletes replaced files after the grace period.
 */
#ifndef TARN_DELIVERY_H
#define TARN_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "common/err.h"
#include "query/query.h"
#include "stream/stream.h"

typedef struct tarn_delivery tarn_delivery;
typedef struct tarn_table tarn_table;

typedef struct tarn_delivery_opts {
    const char *data_dir;        /* absolute path of DATA */
    size_t buffer_size;          /* deliver once this many bytes wait */
    int64_t buffer_interval_ms;  /* ... or once the oldest waiting record is this old */
    size_t max_batch;            /* a batch takes what waits, up to this (at least buffer_size) */
    size_t segment_size;         /* log segment size */
    size_t max_record;           /* largest record the log accepts */
    size_t max_backlog;          /* appends are refused while this many acknowledged bytes of the
                                    table wait for delivery; 0 = no limit */
    int max_tables;              /* tables a first write may create (TARN_ELIMIT beyond); tables
                                    the catalog holds at start are opened whatever their number;
                                    0 = no limit */
    size_t compact_target;       /* compacted file size */
    int compact_min_files;       /* compact a partition once it has this many small files */
    int64_t compact_grace_ms;    /* replaced files are deleted after this */
    int64_t compact_interval_ms; /* how often to look for compaction work */
    int duckdb_threads;          /* 0 = DuckDB's default */
    const char *memory_limit;    /* DuckDB memory_limit or NULL */
} tarn_delivery_opts;

/* Opens every catalog table's stream (recovering it), cleans staging and
 * removes lake files no catalog entry references (left by a crash between
 * rename and publish), then starts the worker. The catalog and the query
 * engine must outlive the delivery. */
int tarn_delivery_open(const tarn_delivery_opts *opts, tarn_catalog *cat, tarn_query_engine *qe, tarn_delivery **out,
                       tarn_errbuf *eb);
/* Stops the worker after delivering everything acknowledged, closes the
 * streams and frees everything. */
void tarn_delivery_close(tarn_delivery *d);

/* Finds a table; with create != 0 creates it (catalog entry and stream) on
 * first use. The handle lives as long as the delivery. TARN_ENOTFOUND. */
int tarn_delivery_table(tarn_delivery *d, const char *db, const char *table, int create, tarn_table **out,
                        tarn_errbuf *eb);
/* Appends records to the table's log without waiting for the disk (see
 * tarn_stream_append_async): on TARN_OK the records are written and w->done
 * is called once they are durable, or with TARN_EIO if the log failed; the
 * caller then reports the failure with tarn_table_log_failed.
 * TARN_EUNAVAILABLE, storing nothing, while the table's backlog (bytes
 * appended since the zone furthest behind last caught up; a log recovered
 * at start counts as caught up) is over max_backlog: delivery is behind or
 * failing, and the client should retry later. */
int tarn_table_append_async(tarn_delivery *d, tarn_table *t, const tarn_record *recs, size_t n, int64_t *first_seq,
                            int64_t *last_seq, tarn_stream_waiter *w, tarn_errbuf *eb);
/* Marks the delivery failed after table t's log failed (msg says how): no
 * table acknowledges anything more and the server exits non-zero. */
void tarn_table_log_failed(tarn_delivery *d, tarn_table *t, const char *msg);
/* What a flush waits for. */
enum { TARN_FLUSH_ALL, TARN_FLUSH_PROCESSED };
/* Delivers everything acknowledged so far and returns once it is published
 * in both zones, or with TARN_FLUSH_PROCESSED once it is in the processed
 * zone (queryable); or the delivery failed: its error, or TARN_ETIMEOUT.
 * *delivered_seq and *raw_seq (either may be NULL) receive the checkpoints
 * at return. */
int tarn_delivery_flush(tarn_delivery *d, tarn_table *t, int64_t timeout_ms, int zones, int64_t *delivered_seq,
                        int64_t *raw_seq, tarn_errbuf *eb);
/* Non-zero once a log failed to fsync: the server must stop. */
int tarn_delivery_failed(tarn_delivery *d);
/* {"database","name","durable_seq","delivered_seq","pending_records","last_error"} per table, as a JSON
 * array appended to out. */
int tarn_delivery_status_json(tarn_delivery *d, tarn_buf *out);

#endif
