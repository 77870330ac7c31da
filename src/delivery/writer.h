/* writer.h - DuckDB as the Parquet writer of the delivery.
 *
 * A private in-memory DuckDB, separate from the query engine, that may read
 * and write only in the staging directory and read the lake (compaction).
 * Used by the delivery worker thread alone.
 */
#ifndef TARN_WRITER_H
#define TARN_WRITER_H

#include <stddef.h>

#include "catalog/catalog.h"
#include "common/err.h"
#include "stream/stream.h"

typedef struct tarn_writer tarn_writer;

int tarn_writer_open(const char *staging_dir, const char *lake_dir, int threads, const char *memory_limit,
                     tarn_writer **out, tarn_errbuf *eb);
void tarn_writer_close(tarn_writer *w);

/* The columns DuckDB's JSON reader infers for staged NDJSON files (raw
 * DuckDB type text, before normalization), every file read. full_sample
 * reads every record instead of DuckDB's sample. "_ingested_at", staged as
 * epoch microseconds (stage.h), is reported as TIMESTAMP: the type
 * tarn_writer_ndjson_to_parquet gives it. *cols is owned by the caller
 * (tarn_columns_free). */
int tarn_writer_infer(tarn_writer *w, const char *const *files, size_t nfiles, int full_sample, tarn_column **cols,
                      size_t *ncols, tarn_errbuf *eb);
/* Converts staged NDJSON files (nfiles >= 1) to one Snappy Parquet file
 * with exactly these columns (values convert to the column types; absent
 * fields are NULL), except that "_ingested_at" is read as epoch
 * microseconds and written as a TIMESTAMP. *rows receives the rows
 * written. */
int tarn_writer_ndjson_to_parquet(tarn_writer *w, const char *const *files, size_t nfiles, const tarn_column *cols,
                                  size_t ncols, const char *parquet, int64_t *rows, tarn_errbuf *eb);
/* Converts the records (from_seq, upto_seq] of stream s straight from the
 * log into one Snappy Parquet file with exactly these columns, without
 * staging them: only those ingested on UTC date `date` ("YYYY-MM-DD"), or
 * every one if date is NULL. The file holds what tarn_writer_ndjson_to_parquet
 * writes from the same records' staged lines, value for value (scan.h says
 * how, and tests/unit/test_scan.c holds the two to it). TARN_EUNSUPPORTED
 * when a record holds a value this path leaves to DuckDB's JSON reader (for
 * example a fraction in a VARCHAR column); nothing is then written, and the
 * caller stages the batch and uses tarn_writer_ndjson_to_parquet. A value
 * that does not fit its column fails as it would there (TARN_EIO with
 * DuckDB's message). *rows receives the rows written. */
/* A quick scan (scan.h, "Quick schema"; date must not be NULL): in, the
 * head whose kinds the batch's values must have, and the batch's byte
 * budget (0: none; otherwise the staging's rule, stage.h); out, the batch's
 * last record and payload bytes. The rows written are checked against the
 * records the scan took. */
typedef struct tarn_writer_quick {
    int64_t learn_upto;
    size_t max_bytes;
    int64_t last_seq, bytes;
} tarn_writer_quick;
int tarn_writer_log_to_parquet(tarn_writer *w, tarn_stream *s, int64_t from_seq, int64_t upto_seq, const char *date,
                               const tarn_column *cols, size_t ncols, tarn_writer_quick *quick, const char *parquet,
                               int64_t *rows, tarn_errbuf *eb);
/* Merges Parquet files written with the same schema into one, ordered by
 * _seq. */
int tarn_writer_merge_parquet(tarn_writer *w, const char *const *files, size_t nfiles, const char *parquet,
                              int64_t *rows, tarn_errbuf *eb);

#endif
