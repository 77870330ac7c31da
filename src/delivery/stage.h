/* stage.h - staging a batch of the log for delivery.
 *
 * A batch is the records after a checkpoint, up to a sequence number and at
 * most a byte budget; both passes over it stop by the same rule, so they
 * cover exactly the same records. Each pass writes one file per UTC ingest
 * date into a staging directory outside the lake:
 *
 *   processed  <date>.ndjson   each record on one line with "_ingested_at"
 *                              and "_seq" added: the Parquet writer's input
 *   raw        <date>.json.gz  the records as received, one per line, as
 *                              gzip members of about 1 MiB (libdeflate:
 *                              about 1.7x zlib's speed; a multi-member gzip
 *                              file is one valid gzip stream to readers)
 *
 * The two passes are independent, so the delivery runs the raw one on a
 * thread of its own while DuckDB converts the processed one.
 */
#ifndef TARN_STAGE_H
#define TARN_STAGE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "stream/stream.h"

enum tarn_stage_kind { TARN_STAGE_PROCESSED, TARN_STAGE_RAW };

typedef struct tarn_stage_part {
    char date[11];               /* YYYY-MM-DD */
    int64_t first_seq, last_seq; /* of the records of this date */
    int64_t rows;
    char path[PATH_MAX];         /* the staged file */
} tarn_stage_part;

typedef struct tarn_stage_result {
    tarn_stage_part *parts; /* one per date, in order of first appearance */
    size_t nparts;
    int64_t last_seq;       /* the last record staged (from_seq if none) */
    int64_t bytes;          /* payload bytes staged */
} tarn_stage_result;

/* Stages records after from_seq, up to upto_seq, stopping once max_bytes of
 * payload are staged, into dir (which must exist). Files are flushed and
 * fsync'd. On success *out is owned by the caller (tarn_stage_result_free);
 * on failure nothing needs freeing. TARN_ENOSPC when the disk is full. */
int tarn_stage_batch(tarn_stream *s, enum tarn_stage_kind kind, int64_t from_seq, int64_t upto_seq, size_t max_bytes,
                     const char *dir, tarn_stage_result *out, tarn_errbuf *eb);
void tarn_stage_result_free(tarn_stage_result *r);

#endif
