/* scan.h - records of the durable log straight into DuckDB vectors.
 *
 * The delivery's fast way from JSON to Parquet. The table function
 * tarn_log_scan(), registered on the writer's private DuckDB (writer.h),
 * reads a batch's records from the log and parses each one into the
 * vectors of the table's columns, so that DuckDB's Parquet writer takes
 * them without a staged copy of the batch and without DuckDB's JSON reader.
 * The staged way cost a write of every byte (about 460 MB of new page cache
 * per 400 MB of records) and a second parse: DuckDB's reader builds a
 * document per record before it converts it.
 *
 * The columns come from the schema inference as before (stage.h, delivery.c);
 * the scan only converts, and it converts exactly as DuckDB's JSON reader
 * does with those columns, or not at all:
 *
 *   column type        JSON values it takes
 *   BOOLEAN            true, false
 *   BIGINT, HUGEINT    integers within the type's range
 *   DOUBLE             any number (integers too), except -0 and a number
 *                      too large or too small to be a finite, non-zero double
 *   VARCHAR            strings (unescaped); integers as their text (-0 as
 *                      "0"); true and false as that text
 *   UUID               strings DuckDB casts to UUID (in braces or not, 32
 *                      hex digits, '-' anywhere among them), parsed here
 *   DATE, TIME, TIMESTAMP, TIMESTAMPTZ
 *                      strings: the scan yields the text and the SELECT casts
 *                      it, as DuckDB's reader does (so text that does not fit
 *                      fails the query the same way)
 *   STRUCT             objects whose keys are fields; absent fields NULL
 *   LIST               arrays
 *   any                null
 *
 * Anything else stops the scan with TARN_EUNSUPPORTED and the reason: a
 * fraction or a nested value in a VARCHAR column (DuckDB re-prints them
 * through its JSON library), a key that is not a field (DuckDB would drop
 * it), a key given twice in one object (also as "id" and "ID"), a string
 * holding \u0000 or half a surrogate pair, an integer out of its column's
 * range, a string that is not a UUID in a UUID column. The delivery then
 * stages the batch and lets DuckDB's JSON reader decide (delivery.c), so
 * what lands in the lake does not depend on which way was taken;
 * tests/unit/test_scan.c holds the two ways to the same output.
 *
 * One difference is on purpose. A key spelled with other capitals than its
 * column ("ID" for "id", in another record or an earlier batch) lands in
 * that column here: DuckDB's names ignore case, so a table cannot have both,
 * and the schema sample spells each key one way (stage.c). DuckDB's reader
 * matches keys byte for byte and drops such a value; a staged batch still
 * does.
 *
 * Quick schema. The columns normally come from a pass over the whole batch
 * (stage.h): its schema sample holds every (path, kind) pair of the batch.
 * That pass cost 0.25 s of a 2 s delivery of 400 MB, and most batches hold
 * nothing that their first records do not. So the delivery may first infer
 * the columns from the first TARN_STAGE_SAMPLE_HEAD records alone and scan
 * the batch with tarn_scan_quick: the scan learns the kinds (kinds.h) of
 * every value of those records at its column or field, then stops at any
 * value of the batch of a kind not learned there, and ends the batch by the
 * staging's byte rule or before the first record of another ingest date
 * (the full pass would have made it a part of its own; the next batch
 * starts with it). A batch that
 * holds no such value has exactly the pairs of its head, so the full pass
 * would have sampled the head plus a spread of records like it: the same
 * pairs, and the same columns, except where DuckDB's guess of a string
 * type reads the text (stage.h: such a value that does not fit stops the
 * scan through its cast, as it fails the write on the full path). A scan
 * that stops sends the delivery to the full pass (delivery.c). Kinds are
 * learned and checked per column, whatever the capitals of the key that
 * brings a value (see above): the full pass samples each spelling as a path
 * of its own, so a batch whose keys vary in case alone may get columns from
 * the quick way that DuckDB would have inferred differently from the full
 * sample; the values land as the normal scan lands them.
 *
 * Threads. DuckDB calls the function from up to the writer's thread count
 * of threads. Each call takes the next records from one stream reader
 * under a mutex (the reader checks every frame's CRC), copies them into the
 * calling thread's buffer (at most a vector of rows and about 4 MiB, or one
 * larger record), and parses them without the lock. Memory: per thread that
 * buffer plus scratch for unescaped strings; the rows are DuckDB's.
 */
#ifndef TARN_SCAN_H
#define TARN_SCAN_H

#include <duckdb.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "common/err.h"
#include "stream/stream.h"

typedef struct tarn_scan tarn_scan;

/* Registers tarn_log_scan() on conn, reading with up to threads threads.
 * *out belongs to the caller and must outlive conn's use of the function
 * (tarn_scan_free after the connection is closed). */
int tarn_scan_register(duckdb_connection conn, int threads, tarn_scan **out, tarn_errbuf *eb);
void tarn_scan_free(tarn_scan *sc);

/* Sets what the next tarn_log_scan() reads: the records (from_seq,
 * upto_seq] of s ingested on UTC date `date` (YYYY-MM-DD; NULL: all), as
 * these columns (_seq and _ingested_at come from the log's frames). Appends
 * to select the SELECT list that gives the columns their types. */
int tarn_scan_prepare(tarn_scan *sc, tarn_stream *s, int64_t from_seq, int64_t upto_seq, const char *date,
                      const tarn_column *cols, size_t ncols, tarn_buf *select, tarn_errbuf *eb);
/* Makes the scan set by tarn_scan_prepare (for one date) a quick one (see
 * "Quick schema"): learns the kinds of the records (from_seq, learn_upto],
 * which must all be of that date and within the byte budget, then the scan
 * stops with TARN_EUNSUPPORTED at a value of a kind not learned at its
 * place, and ends before a record of another date or once max_bytes of
 * payload are taken (0: no limit). Fails (TARN_EUNSUPPORTED with the
 * reason) if a record of the head does not convert or is of another date. */
int tarn_scan_quick(tarn_scan *sc, tarn_stream *s, int64_t learn_upto, size_t max_bytes, tarn_errbuf *eb);
/* The last record the scan took (from_seq if none), and the payload bytes
 * and the number of the records it took. */
void tarn_scan_taken(const tarn_scan *sc, int64_t *last_seq, int64_t *bytes, int64_t *rows);
/* Ends the scan set by tarn_scan_prepare, whose query returned query_rc
 * (its message in eb). Returns query_rc, except that a scan stopped by a
 * value it does not convert gives TARN_EUNSUPPORTED and a failure of the
 * log its own code, with their messages. */
int tarn_scan_finish(tarn_scan *sc, int query_rc, tarn_errbuf *eb);

#endif
