/* delivery.c - see delivery.h for the steps of one delivery.
 *
 * Threads: HTTP threads call tarn_delivery_table / tarn_table_append_async /
 * tarn_delivery_flush. Two worker threads write the lake, each its own
 * files and checkpoint: the processed worker does every delivery to the
 * processed zone, compaction and deletion; the raw worker copies what the
 * processed zone has published into the raw zone, at the lowest CPU
 * priority (nice 19), so that on a busy machine the gzip work of the archive
 * waits for the conversion that makes records queryable. d->mu guards the
 * table list and every table's delivery state; it is never held while a
 * worker does I/O.
 *
 * Crash safety: each zone has one checkpoint in the catalog (delivered_seq,
 * raw_seq <= delivered_seq), advanced in the transaction that publishes the
 * zone's files. Files are renamed into the lake before that transaction; a
 * crash between the two leaves lake files no catalog row names, which
 * tarn_delivery_open deletes (lake_sweep) before the same records are
 * delivered again. The log is trimmed at the smaller checkpoint. Replaced
 * (compacted) files are deleted only after the grace period, and at start,
 * when no query can be using them.
 */
#include "delivery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "delivery/partition.h"
#include "delivery/schema.h"
#include "delivery/stage.h"
#include "delivery/writer.h"

#define LOG "delivery"
#define DELIVERY_RETRY_MIN_MS 500
#define DELIVERY_RETRY_MAX_MS 30000
#define DELIVERY_RAW_NICE 19
/* After a quick scan stopped (scan.h, "Quick schema"), the table's next
 * batches take the full way: a table whose batches keep bringing new kinds
 * pays for a stopped scan once in this many. */
#define DELIVERY_QUICK_BACKOFF 8

/* The two zones a delivery writes, each with its own worker and state. */
enum { ZONE_PROCESSED, ZONE_RAW, ZONES };
static const char *const zone_names[ZONES] = {"processed", "raw"};

/* A table's delivery state for one zone. Guarded by tarn_delivery.mu except
 * bytes_mark (see there). */
typedef struct zone_state {
    int64_t seq; /* the checkpoint: every record with seq <= this is published in the zone */
    /* Durable bytes already counted: delivered, or found at start. Written
     * by the zone's worker under mu; appenders read it without mu (backlog). */
    atomic_llong bytes_mark;
    int64_t retry_at_ms; /* after a failed delivery, not before this */
    int64_t retry_delay_ms;
    int64_t failures;    /* delivery failures so far (flush waiters watch it) */
    int last_error_code;
    char last_error[512];
} zone_state;

struct tarn_table {
    int64_t id;
    char db[129];
    char name[129];
    tarn_stream *stream;

    /* Guarded by tarn_delivery.mu. */
    zone_state z[ZONES];
    int64_t pending_since_ms; /* monotonic time the worker first saw undelivered records; 0 = none */
    int64_t flush_target;     /* the processed zone is due until it reaches this */

    /* The processed worker's own. */
    int quick_backoff; /* batches to deliver the full way before trying the quick way again */
};

struct tarn_delivery {
    tarn_delivery_opts opts;
    char data_dir[PATH_MAX];
    char lake_dir[PATH_MAX];
    char staging_dir[PATH_MAX];
    char stream_dir[PATH_MAX];
    tarn_catalog *cat;
    tarn_query_engine *qe;
    tarn_writer *writer;

    pthread_mutex_t mu;
    pthread_cond_t work;  /* wakes the worker */
    pthread_cond_t done;  /* wakes flush waiters */
    tarn_table **tables;
    size_t ntables;
    int stopping;
    atomic_int failed; /* a log failed to sync: nothing more is acknowledged */
    pthread_t worker, raw_worker;
    int worker_started, raw_worker_started;
    pthread_cond_t raw_work; /* wakes the raw worker */
    int worker_done;         /* the processed worker has stopped: no more raw work will come */
    int64_t last_maintenance_ms;
    int stage_threads; /* threads of the processed staging pass: DuckDB's */
};


/* ---------------------------------------------------------------- tables */

static int delivery_stream_path(tarn_delivery *d, const char *db, const char *name, char *out, size_t n)
{
    /* One directory level per name: "<db>.<table>" could exceed NAME_MAX. */
    return snprintf(out, n, "%s/%s/%s", d->stream_dir, db, name) >= (int)n ? TARN_EINVAL : TARN_OK;
}

/* Opens the stream of a catalog table and makes its handle. */
static int table_open(tarn_delivery *d, const tarn_table_info *info, tarn_table **out, tarn_errbuf *eb)
{
    tarn_table *t = calloc(1, sizeof *t);
    if (!t) return TARN_ENOMEM;
    t->id = info->id;
    snprintf(t->db, sizeof t->db, "%s", info->db);
    snprintf(t->name, sizeof t->name, "%s", info->name);
    t->z[ZONE_PROCESSED].seq = info->delivered_seq;
    t->z[ZONE_RAW].seq = info->raw_seq < info->delivered_seq ? info->raw_seq : info->delivered_seq;
    char dir[PATH_MAX];
    int rc = delivery_stream_path(d, info->db, info->name, dir, sizeof dir);
    if (rc == TARN_OK) rc = tarn_mkdir_p(dir, eb);
    if (rc == TARN_OK) {
        tarn_stream_opts so = {d->opts.segment_size, d->opts.max_record, info->delivered_seq + 1};
        rc = tarn_stream_open(dir, &so, &t->stream, eb);
    }
    if (rc == TARN_OK) {
        /* What recovery found may be partly delivered already (segments are
         * trimmed whole): it does not count toward the size trigger. What of
         * it is pending is due at once, as if flushed: waiting for the
         * interval (up to a day) would leave a restarted server's backlog
         * undelivered until then. */
        int64_t durable, bytes;
        tarn_stream_stats(t->stream, &durable, &bytes);
        for (int z = 0; z < ZONES; z++) atomic_init(&t->z[z].bytes_mark, bytes);
        t->flush_target = durable;
    }
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return TARN_OK;
}

static tarn_table *table_find_locked(tarn_delivery *d, const char *db, const char *name)
{
    for (size_t i = 0; i < d->ntables; i++)
        if (strcmp(d->tables[i]->db, db) == 0 && strcmp(d->tables[i]->name, name) == 0) return d->tables[i];
    return NULL;
}

static int table_add_locked(tarn_delivery *d, tarn_table *t)
{
    tarn_table **n = realloc(d->tables, (d->ntables + 1) * sizeof *n);
    if (!n) return TARN_ENOMEM;
    d->tables = n;
    d->tables[d->ntables++] = t;
    return TARN_OK;
}

/* Whether the stream directory of db.name exists. */
static int table_dir_exists(tarn_delivery *d, const char *db, const char *name)
{
    char dir[PATH_MAX];
    struct stat st;
    return delivery_stream_path(d, db, name, dir, sizeof dir) == TARN_OK && lstat(dir, &st) == 0;
}

/* Removes what a failed first write made: the table's catalog entry (and
 * its database's, if it has no other table) when the table never held
 * anything, and its stream directory if this write created it (no record
 * in it was acknowledged). */
static void table_undo_new(tarn_delivery *d, const tarn_table_info *info, int dir_existed)
{
    if (info->schema_version != 0 || info->delivered_seq != 0) return;
    tarn_errbuf ueb = {{0}};
    if (tarn_catalog_drop_new_table(d->cat, info->id, info->db, &ueb))
        tarn_log_warn(LOG, "%s.%s: undoing a failed first write: %s", info->db, info->name, ueb.msg);
    char dir[PATH_MAX];
    if (dir_existed || delivery_stream_path(d, info->db, info->name, dir, sizeof dir) != TARN_OK) return;
    struct stat st;
    if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode)) tarn_rm_rf(dir);
    /* The database's directory too, if that left it empty (rmdir fails
     * otherwise). */
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

int tarn_delivery_table(tarn_delivery *d, const char *db, const char *table, int create, tarn_table **out,
                        tarn_errbuf *eb)
{
    pthread_mutex_lock(&d->mu);
    tarn_table *t = table_find_locked(d, db, table);
    int rc = TARN_OK;
    if (!t && !create) rc = tarn_errbuf_set(eb, TARN_ENOTFOUND, "table %s.%s not found", db, table);
    if (!t && create && d->opts.max_tables > 0 && d->ntables >= (size_t)d->opts.max_tables)
        rc = tarn_errbuf_set(eb, TARN_ELIMIT,
                             "cannot create %s.%s: the server holds %zu tables, its limit (limits.max_tables)", db,
                             table, d->ntables);
    else if (!t && create) {
        /* Creating under the lock keeps two first writers from opening the
         * same stream twice; it happens once per table. */
        tarn_table_info info;
        memset(&info, 0, sizeof info);
        int dir_existed = table_dir_exists(d, db, table);
        rc = tarn_catalog_ensure_table(d->cat, db, table, &info, eb);
        if (rc == TARN_OK) {
            rc = table_open(d, &info, &t, eb);
            if (rc == TARN_OK && (rc = table_add_locked(d, t))) {
                tarn_stream_close(t->stream);
                free(t);
                t = NULL;
                tarn_errbuf_set(eb, rc, "out of memory");
            }
            /* A first write that failed leaves nothing behind: not the
             * catalog entry, not the stream directory. */
            if (rc) table_undo_new(d, &info, dir_existed);
        }
        tarn_table_info_free(&info);
        if (rc == TARN_OK) tarn_log_info(LOG, "created table %s.%s", db, table);
    }
    pthread_mutex_unlock(&d->mu);
    if (rc == TARN_OK) *out = t;
    return rc;
}

/* The bytes every zone has counted: the log holds at least the rest. */
static int64_t table_mark(tarn_table *t)
{
    int64_t p = atomic_load(&t->z[ZONE_PROCESSED].bytes_mark), r = atomic_load(&t->z[ZONE_RAW].bytes_mark);
    return p < r ? p : r;
}

void tarn_table_log_failed(tarn_delivery *d, tarn_table *t, const char *msg)
{
    atomic_store(&d->failed, 1);
    tarn_log_error(LOG, "%s.%s: durable log failed, no longer acknowledging: %s", t->db, t->name, msg ? msg : "");
}

int tarn_table_append_async(tarn_delivery *d, tarn_table *t, const tarn_record *recs, size_t n, int64_t *first_seq,
                            int64_t *last_seq, tarn_stream_waiter *w, tarn_errbuf *eb)
{
    /* Once any log has failed to sync the server is going down: no table
     * acknowledges anything more, not only the one that failed. */
    if (atomic_load(&d->failed))
        return tarn_errbuf_set(eb, TARN_EUNAVAILABLE, "the server is stopping after a storage failure");
    if (d->opts.max_backlog) {
        int64_t bytes;
        tarn_stream_stats(t->stream, NULL, &bytes);
        int64_t backlog = bytes - table_mark(t);
        if (backlog > (int64_t)d->opts.max_backlog)
            return tarn_errbuf_set(eb, TARN_EUNAVAILABLE,
                                   "%s.%s has %lld bytes acknowledged but not yet delivered, over limits.max_backlog "
                                   "(%zu); retry once delivery catches up",
                                   t->db, t->name, (long long)backlog, d->opts.max_backlog);
    }
    int rc = tarn_stream_append_async(t->stream, recs, n, tarn_now_us(), first_seq, last_seq, w, eb);
    if (rc == TARN_EIO) tarn_table_log_failed(d, t, eb ? eb->msg : NULL);
    return rc;
}

int tarn_delivery_failed(tarn_delivery *d) { return atomic_load(&d->failed); }

/* ------------------------------------------------------------- publishing */

/* Moves a staged file to its lake path (creating directories) and fsyncs
 * the directories on the way, so the rename survives a crash. */
static int lake_install(tarn_delivery *d, const char *staged, const char *rel, tarn_errbuf *eb)
{
    char dst[PATH_MAX], dir[PATH_MAX];
    if (snprintf(dst, sizeof dst, "%s/%s", d->lake_dir, rel) >= (int)sizeof dst)
        return tarn_errbuf_set(eb, TARN_EINVAL, "lake path too long: %s", rel);
    snprintf(dir, sizeof dir, "%s", dst);
    *strrchr(dir, '/') = '\0';
    int rc = tarn_mkdir_p(dir, eb);
    if (rc) return rc;
    if ((rc = tarn_fsync_path(staged, eb))) return rc;
    if (rename(staged, dst) != 0)
        return tarn_errbuf_set(eb, TARN_EIO, "rename %s -> %s: %s", staged, dst, strerror(errno));
    /* The partition dir, then its parents up to the lake root: each may be new. */
    for (;;) {
        if ((rc = tarn_fsync_dir(dir, eb))) return rc;
        char *slash = strrchr(dir, '/');
        if (!slash || strlen(dir) <= strlen(d->lake_dir)) break;
        *slash = '\0';
    }
    return TARN_OK;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Records a failed delivery of zone z. Called with d->mu. */
static void table_fail_locked(tarn_delivery *d, tarn_table *t, int z, int rc, const char *msg)
{
    zone_state *zs = &t->z[z];
    zs->failures++;
    zs->last_error_code = rc;
    snprintf(zs->last_error, sizeof zs->last_error, "%s", msg);
    zs->retry_delay_ms = zs->retry_delay_ms ? zs->retry_delay_ms * 2 : DELIVERY_RETRY_MIN_MS;
    if (zs->retry_delay_ms > DELIVERY_RETRY_MAX_MS) zs->retry_delay_ms = DELIVERY_RETRY_MAX_MS;
    zs->retry_at_ms = tarn_mono_ms() + zs->retry_delay_ms;
    /* Give up on a stop only after three tries in a row (the delay doubles
     * from DELIVERY_RETRY_MIN_MS and a success resets it): the records stay
     * in the log and are delivered at the next start. */
    if (d->stopping && zs->retry_delay_ms >= 4 * DELIVERY_RETRY_MIN_MS) zs->retry_at_ms = INT64_MAX;
    pthread_cond_broadcast(&d->done);
    tarn_log_error(LOG, "%s.%s: delivery to the %s zone failed (retrying in %lld ms): %s", t->db, t->name,
                   zone_names[z], (long long)zs->retry_delay_ms, msg);
}

/* Records a delivery of zone z through seq, of delivered_bytes payload
 * bytes, with the log at total bytes when the batch was picked. Called with
 * d->mu. */
static void table_advance_locked(tarn_delivery *d, tarn_table *t, int z, int64_t seq, int64_t delivered_bytes,
                                 int64_t total)
{
    zone_state *zs = &t->z[z];
    zs->seq = seq;
    /* The mark advances by what this batch delivered, not to the log's end:
     * a backlog larger than one batch stays due by size. */
    int64_t mark = atomic_load(&zs->bytes_mark) + delivered_bytes;
    atomic_store(&zs->bytes_mark, mark > total ? total : mark);
    zs->retry_delay_ms = 0;
    zs->retry_at_ms = 0;
    zs->last_error_code = 0;
    zs->last_error[0] = '\0';
    pthread_cond_broadcast(&d->done);
}

/* Deletes the log segments both zones have published. */
static void table_trim(tarn_delivery *d, tarn_table *t)
{
    pthread_mutex_lock(&d->mu);
    int64_t upto = t->z[ZONE_RAW].seq < t->z[ZONE_PROCESSED].seq ? t->z[ZONE_RAW].seq : t->z[ZONE_PROCESSED].seq;
    pthread_mutex_unlock(&d->mu);
    tarn_errbuf eb = {{0}};
    if (tarn_stream_trim(t->stream, upto, &eb))
        tarn_log_warn(LOG, "%s.%s: trimming the log failed: %s", t->db, t->name, eb.msg);
}

/* A batch's byte budget: what waits, up to max_batch (never below the
 * buffer size). A table that is not behind has about one buffer waiting
 * when it becomes due; one that is behind (a backlog recovered at start, or
 * ingest faster than delivery for a while) catches up in fewer, larger
 * batches: each batch has its fixed costs (schema pass, inference, DuckDB's
 * pipeline start and tail, fsyncs, a catalog transaction), and a backlog
 * cut into buffer-sized batches becomes small files that compaction would
 * rewrite anyway. */
static size_t delivery_batch_bytes(const tarn_delivery *d)
{
    return d->opts.max_batch > d->opts.buffer_size ? d->opts.max_batch : d->opts.buffer_size;
}

/* The Parquet file of a staged part: <dir>/<date>.parquet. */
static void batch_parquet_path(char *out, size_t n, const char *dir, const tarn_stage_part *p)
{
    snprintf(out, n, "%s/%s.parquet", dir, p->date);
}

/* The table's columns (info) widened by the batch's: DuckDB infers them from
 * files, HUGEINT narrowed to BIGINT if asked (delivery's first attempt),
 * string types guessed by DuckDB as VARCHAR if asked (its last). *infer_ms
 * grows by the time it took. */
static int batch_columns(tarn_delivery *d, const tarn_table_info *info, const char *const *files, size_t nfiles,
                         int narrow, int text, tarn_column **cols, size_t *ncols, int64_t *infer_ms, tarn_errbuf *eb)
{
    static const char *const trailing[] = {"_ingested_at", "_seq"};
    tarn_column *inferred = NULL;
    size_t ninferred = 0;
    tarn_columns_free(*cols, *ncols);
    *cols = NULL;
    *ncols = 0;
    int64_t t0 = tarn_mono_ms();
    int rc = tarn_writer_infer(d->writer, files, nfiles, 1, &inferred, &ninferred, eb);
    *infer_ms += tarn_mono_ms() - t0;
    if (rc == TARN_OK && narrow && (rc = tarn_columns_narrow_hugeint(inferred, ninferred, eb)) > 0) rc = TARN_OK;
    if (rc == TARN_OK && text && (rc = tarn_columns_text_as_varchar(inferred, ninferred, "_ingested_at", eb)) > 0)
        rc = TARN_OK;
    if (rc == TARN_OK)
        rc = tarn_columns_merge(info->columns, info->ncolumns, inferred, ninferred, trailing, 2, cols, ncols, eb);
    tarn_columns_free(inferred, ninferred);
    return rc;
}

/* Checks the rows a part's Parquet file got. */
static int batch_rows_check(const tarn_stage_part *p, int64_t rows, tarn_errbuf *eb)
{
    if (rows == p->rows) return TARN_OK;
    return tarn_errbuf_set(eb, TARN_EINTERNAL, "parquet for %s has %lld rows, expected %lld", p->date,
                           (long long)rows, (long long)p->rows);
}

/* The sample's files, in the order they are to be read. */
static size_t batch_sample(const tarn_stage_result *staged, const char **sample)
{
    for (size_t k = 0; k < staged->nsamples; k++) sample[k] = staged->sample_paths[k];
    return staged->nsamples;
}

/* The fast way (scan.h): infers the batch schema from the sample of a
 * TARN_STAGE_SCHEMA pass (staged), widens the table's, and writes one
 * Parquet file per part into dir straight from the log. Any failure (a
 * value the scan leaves to DuckDB's JSON reader, one that does not fit the
 * inferred type) sends the caller to batch_write_parquet, which decides as
 * before.
 * With quick (scan.h, "Quick schema"), staged is the pass over the head of
 * the batch only (one part) and the scan goes on up to upto_seq: on success
 * quick holds where the batch ended and staged's part its rows. */
static int batch_scan_parquet(tarn_delivery *d, const tarn_table_info *info, tarn_table *t, int64_t from_seq,
                              tarn_stage_result *staged, const char *dir, tarn_writer_quick *quick,
                              int64_t upto_seq, tarn_column **cols, size_t *ncols, int64_t *infer_ms, tarn_errbuf *eb)
{
    const char *sample[TARN_STAGE_MAX_SAMPLES];
    size_t nsample = batch_sample(staged, sample);
    if (!nsample) return tarn_errbuf_set(eb, TARN_EUNSUPPORTED, "the batch has no schema sample");
    int rc = batch_columns(d, info, sample, nsample, !staged->ubigint_values, 0, cols, ncols, infer_ms, eb);
    for (size_t i = 0; rc == TARN_OK && i < staged->nparts; i++) {
        tarn_stage_part *p = &staged->parts[i];
        char out[PATH_MAX];
        batch_parquet_path(out, sizeof out, dir, p);
        int64_t rows = 0;
        rc = tarn_writer_log_to_parquet(d->writer, t->stream, from_seq, quick ? upto_seq : staged->last_seq,
                                        staged->nparts > 1 || quick ? p->date : NULL, *cols, *ncols, quick, out,
                                        &rows, eb);
        if (rc == TARN_OK && !quick) rc = batch_rows_check(p, rows, eb);
        if (rc == TARN_OK && quick) p->rows = rows;
    }
    return rc;
}

/* The staged way: infers the batch schema, widens the table's, and writes
 * one Parquet file per part into dir from the lines of a TARN_STAGE_PROCESSED
 * pass (staged). On success *cols holds the table's new schema; *infer_ms
 * grows by the time inference took. */
static int batch_write_parquet(tarn_delivery *d, const tarn_table_info *info, const tarn_stage_result *staged,
                               const char *dir, tarn_column **cols, size_t *ncols, int64_t *infer_ms, tarn_errbuf *eb)
{
    /* Every staged file of every part (for inference from every record),
     * and the sample's files. */
    size_t nfiles = 0;
    const char **files = calloc(staged->nparts * TARN_STAGE_MAX_THREADS, sizeof *files);
    const char *sample[TARN_STAGE_MAX_SAMPLES];
    size_t nsample = batch_sample(staged, sample);
    int rc = files ? TARN_OK : TARN_ENOMEM;
    for (size_t i = 0; files && i < staged->nparts; i++)
        for (size_t k = 0; k < staged->parts[i].npaths; k++) files[nfiles++] = staged->parts[i].paths[k];

    /* The first attempt infers from the staging's schema sample, read whole:
     * it holds every key and every kind of value of the batch (stage.h). If
     * there is none (past a limit), it reads every record. DuckDB still
     * guesses string types (DATE, TIMESTAMP, UUID) from the values it reads;
     * a later string that does not fit fails the write (or, where DuckDB
     * casts leniently, is converted: stage.h), and the second attempt reads
     * every record. A guess can fail even then: DuckDB infers DATE from
     * "25-11-2025" and its reader then refuses the text. So the third takes
     * every string the batch has as VARCHAR: a column the batch would have
     * made a DATE widens to VARCHAR by the schema rules, and the batch is
     * delivered rather than retried for ever. */
    for (int attempt = 0; rc == TARN_OK && attempt < 3; attempt++) {
        int from_sample = attempt == 0 && nsample > 0;
        /* HUGEINT is taken as BIGINT where that fits: DuckDB infers HUGEINT
         * when positive and negative integers mix. The staging pass knows
         * whether some integer does not fit; without a sample it is unknown,
         * and only the first attempt narrows. */
        int narrow = nsample > 0 ? !staged->ubigint_values : attempt == 0;
        rc = batch_columns(d, info, from_sample ? sample : files, from_sample ? nsample : nfiles, narrow, attempt == 2,
                           cols, ncols, infer_ms, eb);
        for (size_t i = 0; rc == TARN_OK && i < staged->nparts; i++) {
            const tarn_stage_part *p = &staged->parts[i];
            char out[PATH_MAX];
            batch_parquet_path(out, sizeof out, dir, p);
            int64_t rows = 0;
            const char *paths[TARN_STAGE_MAX_THREADS];
            for (size_t k = 0; k < p->npaths; k++) paths[k] = p->paths[k];
            rc = tarn_writer_ndjson_to_parquet(d->writer, paths, p->npaths, *cols, *ncols, out, &rows, eb);
            if (rc == TARN_OK) rc = batch_rows_check(p, rows, eb);
        }
        if (rc == TARN_OK || attempt == 2) break;
        tarn_log_warn(LOG, "%s.%s: write with the schema inferred from %s failed (%s); inferring from every record%s",
                      info->db, info->name, from_sample ? "the schema sample" : "every record", eb->msg,
                      attempt == 1 ? ", strings as VARCHAR" : "");
        rc = TARN_OK;
    }
    free(files);
    return rc;
}

/* Moves each staged part's file (zone z: its Parquet file in dir, or its
 * one gzip file) into the lake as <zone>/<db>/<table>/<partition>/
 * <first>-<last>.<ext> and describes it in files[] (nparts entries, owned
 * by the caller even on failure: free with tarn_files_free(files, *nfiles)). */
static int batch_install(tarn_delivery *d, tarn_table *t, int z, const tarn_stage_result *staged, const char *dir,
                         tarn_file *files, size_t *nfiles, tarn_errbuf *eb)
{
    int rc = TARN_OK;
    for (size_t i = 0; rc == TARN_OK && i < staged->nparts; i++) {
        const tarn_stage_part *p = &staged->parts[i];
        char source[PATH_MAX];
        if (z == ZONE_PROCESSED) batch_parquet_path(source, sizeof source, dir, p);
        else snprintf(source, sizeof source, "%s", p->paths[0]);
        tarn_buf seg;
        tarn_buf_init(&seg, 4096);
        char rel[PATH_MAX];
        rc = tarn_partition_segment(&seg, "ingestion_date", p->date, strlen(p->date));
        if (rc == TARN_OK)
            snprintf(rel, sizeof rel, "%s/%s/%s/%s/%lld-%lld.%s", zone_names[z], t->db, t->name, seg.data,
                     (long long)p->first_seq, (long long)p->last_seq, z == ZONE_PROCESSED ? "parquet" : "json.gz");
        int64_t size = file_size(source);
        if (rc == TARN_OK) rc = lake_install(d, source, rel, eb);
        if (rc == TARN_OK) {
            tarn_file *f = &files[(*nfiles)++];
            f->path = strdup(rel);
            f->zone = strdup(zone_names[z]);
            f->partition = strdup(seg.data);
            f->first_seq = p->first_seq;
            f->last_seq = p->last_seq;
            f->rows = p->rows;
            f->bytes = size;
            if (!f->path || !f->zone || !f->partition) rc = TARN_ENOMEM;
        }
        tarn_buf_free(&seg);
    }
    return rc;
}

/* Delivers to the processed zone the records after its checkpoint, up to
 * upto_seq and at most one buffer's worth. Called by the processed worker
 * without d->mu. *delivered receives the new checkpoint, *delivered_bytes
 * the payload bytes delivered. The staging directory it used is left in dir
 * (PATH_MAX bytes) for the caller to remove, success or not: deleting a
 * batch's staged files frees hundreds of MB of page cache (about 50 ms for
 * 460 MB), which flush waiters need not wait for. */
static int table_deliver(tarn_delivery *d, tarn_table *t, int64_t from_seq, int64_t upto_seq, char *dir,
                         int64_t *delivered, int64_t *delivered_bytes, tarn_errbuf *eb)
{
    tarn_table_info info;
    memset(&info, 0, sizeof info);
    tarn_stage_result staged;
    memset(&staged, 0, sizeof staged);
    tarn_column *cols = NULL;
    size_t ncols = 0;
    tarn_file *files = NULL;
    size_t nfiles = 0;
    int rc;

    snprintf(dir, PATH_MAX, "%s/t%lld-%lld", d->staging_dir, (long long)t->id, (long long)from_seq + 1);
    tarn_rm_rf(dir);
    if ((rc = tarn_mkdir_p(dir, eb))) goto out;
    if ((rc = tarn_catalog_get_table(d->cat, t->db, t->name, &info, eb))) goto out;

    int64_t t_start = tarn_mono_ms(), t_staged = 0, t_parquet = 0, infer_ms = 0;
    const char *how = "from the log";
    /* The quick way first, if the batch may be longer than its head and no
     * quick scan of this table stopped lately: a pass over the head gives
     * the schema sample and the part, and the scan checks the rest. */
    int64_t head_upto = from_seq + TARN_STAGE_SAMPLE_HEAD;
    if (t->quick_backoff > 0) t->quick_backoff--;
    else if (upto_seq > head_upto) {
        if ((rc = tarn_stage_batch(t->stream, TARN_STAGE_SCHEMA, from_seq, head_upto, delivery_batch_bytes(d),
                                   d->stage_threads, dir, &staged, eb)))
            goto out;
        /* A head that reached the byte budget is the whole batch. */
        int whole = (size_t)staged.bytes >= delivery_batch_bytes(d);
        if (!whole && staged.nparts == 1 && staged.nsamples > 0) {
            t_staged = tarn_mono_ms();
            tarn_writer_quick q = {head_upto, delivery_batch_bytes(d), 0, 0};
            rc = batch_scan_parquet(d, &info, t, from_seq, &staged, dir, &q, upto_seq, &cols, &ncols, &infer_ms, eb);
            if (rc == TARN_OK) {
                staged.last_seq = staged.parts[0].last_seq = q.last_seq;
                staged.bytes = q.bytes;
                how = "quick from the log";
                goto install;
            }
            tarn_log_info(LOG, "%s.%s: the quick scan of records %lld-%lld stopped (%s); taking the full way", t->db,
                          t->name, (long long)from_seq + 1, (long long)upto_seq, eb->msg);
            t->quick_backoff = DELIVERY_QUICK_BACKOFF;
            infer_ms = 0;
            rc = TARN_OK;
        }
        if (!whole) tarn_stage_result_free(&staged);
    }
    /* 1-2: the schema sample and the parts. */
    if (!staged.parts && (rc = tarn_stage_batch(t->stream, TARN_STAGE_SCHEMA, from_seq, upto_seq,
                                                delivery_batch_bytes(d), d->stage_threads, dir, &staged, eb)))
        goto out;
    if (staged.nparts == 0) {
        *delivered = from_seq;
        goto out;
    }

    t_staged = tarn_mono_ms();
    /* 3: schema and Parquet, straight from the log; else staged. */
    if ((rc = batch_scan_parquet(d, &info, t, from_seq, &staged, dir, NULL, 0, &cols, &ncols, &infer_ms, eb))) {
        tarn_log_info(LOG, "%s.%s: converting records %lld-%lld straight from the log stopped (%s); staging them",
                      t->db, t->name, (long long)from_seq + 1, (long long)staged.last_seq, eb->msg);
        int64_t last = staged.last_seq;
        tarn_stage_result_free(&staged);
        how = "staged";
        if ((rc = tarn_stage_batch(t->stream, TARN_STAGE_PROCESSED, from_seq, last, delivery_batch_bytes(d),
                                   d->stage_threads, dir, &staged, eb)))
            goto out;
        t_staged = tarn_mono_ms();
        if ((rc = batch_write_parquet(d, &info, &staged, dir, &cols, &ncols, &infer_ms, eb))) goto out;
    }
install:
    t_parquet = tarn_mono_ms();

    /* 4: into the lake. */
    if (!(files = calloc(staged.nparts, sizeof *files))) {
        rc = TARN_ENOMEM;
        goto out;
    }
    if ((rc = batch_install(d, t, ZONE_PROCESSED, &staged, dir, files, &nfiles, eb))) goto out;

    /* 5: publish files, schema and checkpoint together. */
    int schema_changed = !tarn_columns_equal(info.columns, info.ncolumns, cols, ncols);
    rc = tarn_catalog_publish(d->cat, t->id, schema_changed ? cols : NULL, schema_changed ? ncols : 0, files, nfiles,
                              staged.last_seq, eb);
    if (rc) goto out;
    *delivered = staged.last_seq;
    *delivered_bytes = staged.bytes;
    int64_t t_published = tarn_mono_ms();
    tarn_errbuf qeb = {{0}};
    if (tarn_query_refresh_table(d->qe, t->db, t->name, &qeb))
        tarn_log_error(LOG, "%s.%s: refreshing the query view failed: %s", t->db, t->name, qeb.msg);
    tarn_log_info(LOG,
                  "%s.%s: delivered %lld records (%.1f MB) through seq %lld in %lld ms: staging %lld, parquet %s %lld "
                  "(schema %lld), publish %lld, view %lld",
                  t->db, t->name, (long long)(staged.last_seq - from_seq), staged.bytes / 1e6,
                  (long long)staged.last_seq, (long long)(tarn_mono_ms() - t_start), (long long)(t_staged - t_start),
                  how, (long long)(t_parquet - t_staged), (long long)infer_ms, (long long)(t_published - t_parquet),
                  (long long)(tarn_mono_ms() - t_published));
    if (schema_changed) tarn_log_info(LOG, "%s.%s: schema now has %zu columns", t->db, t->name, ncols);
out:
    tarn_stage_result_free(&staged);
    tarn_columns_free(cols, ncols);
    if (files) tarn_files_free(files, nfiles);
    tarn_table_info_free(&info);
    return rc;
}

/* Delivers to the raw zone the records after its checkpoint, up to upto_seq
 * (the processed zone's checkpoint) and at most one buffer's worth: the
 * records as received, gzip NDJSON, one file per UTC ingest date. Called by
 * the raw worker without d->mu; outputs as for table_deliver. */
static int table_deliver_raw(tarn_delivery *d, tarn_table *t, int64_t from_seq, int64_t upto_seq, int64_t *delivered,
                             int64_t *delivered_bytes, tarn_errbuf *eb)
{
    char dir[PATH_MAX];
    tarn_stage_result staged;
    memset(&staged, 0, sizeof staged);
    tarn_file *files = NULL;
    size_t nfiles = 0;
    int rc;

    snprintf(dir, sizeof dir, "%s/r%lld-%lld", d->staging_dir, (long long)t->id, (long long)from_seq + 1);
    tarn_rm_rf(dir);
    if ((rc = tarn_mkdir_p(dir, eb))) goto out;
    int64_t t_start = tarn_mono_ms();
    if ((rc = tarn_stage_batch(t->stream, TARN_STAGE_RAW, from_seq, upto_seq, delivery_batch_bytes(d), 1, dir, &staged,
                               eb)))
        goto out;
    if (staged.nparts == 0) {
        *delivered = from_seq;
        goto out;
    }
    if (!(files = calloc(staged.nparts, sizeof *files))) {
        rc = TARN_ENOMEM;
        goto out;
    }
    if ((rc = batch_install(d, t, ZONE_RAW, &staged, dir, files, &nfiles, eb))) goto out;
    if ((rc = tarn_catalog_publish_raw(d->cat, t->id, files, nfiles, staged.last_seq, eb))) goto out;
    *delivered = staged.last_seq;
    *delivered_bytes = staged.bytes;
    tarn_log_info(LOG, "%s.%s: raw zone has %lld more records (%.1f MB) through seq %lld in %lld ms", t->db, t->name,
                  (long long)(staged.last_seq - from_seq), staged.bytes / 1e6, (long long)staged.last_seq,
                  (long long)(tarn_mono_ms() - t_start));
out:
    tarn_stage_result_free(&staged);
    if (files) tarn_files_free(files, nfiles);
    tarn_rm_rf(dir);
    return rc;
}

/* ------------------------------------------------------------ compaction */

/* Merges files of one partition and one schema version into one file. */
static int compact_group(tarn_delivery *d, tarn_table *t, tarn_file *group, size_t n, tarn_errbuf *eb)
{
    const char **paths = calloc(n, sizeof *paths);
    const char **rels = calloc(n, sizeof *rels);
    char **abs = calloc(n, sizeof *abs);
    int rc = paths && rels && abs ? TARN_OK : TARN_ENOMEM;
    int64_t first = INT64_MAX, lastseq = 0, bytes_in = 0;
    for (size_t i = 0; rc == TARN_OK && i < n; i++) {
        if (asprintf(&abs[i], "%s/%s", d->lake_dir, group[i].path) < 0) {
            abs[i] = NULL;
            rc = TARN_ENOMEM;
            break;
        }
        paths[i] = abs[i];
        rels[i] = group[i].path;
        if (group[i].first_seq < first) first = group[i].first_seq;
        if (group[i].last_seq > lastseq) lastseq = group[i].last_seq;
        bytes_in += group[i].bytes;
    }
    char staged[PATH_MAX], rel[PATH_MAX];
    snprintf(staged, sizeof staged, "%s/compact-%lld-%lld.parquet", d->staging_dir, (long long)first, (long long)lastseq);
    snprintf(rel, sizeof rel, "processed/%s/%s/%s/%lld-%lld.parquet", t->db, t->name, group[0].partition,
             (long long)first, (long long)lastseq);
    int64_t rows = 0;
    if (rc == TARN_OK)
        rc = tarn_writer_merge_parquet(d->writer, paths, n, staged, &rows, eb);
    int64_t want = 0;
    for (size_t i = 0; i < n; i++) want += group[i].rows;
    if (rc == TARN_OK && rows != want)
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "compacted file has %lld rows, expected %lld", (long long)rows,
                             (long long)want);
    int64_t size = rc == TARN_OK ? file_size(staged) : 0;
    if (rc == TARN_OK) rc = lake_install(d, staged, rel, eb);
    if (rc == TARN_OK) {
        tarn_file nf = {rel, "processed", group[0].partition, first, lastseq, rows, size, group[0].schema_version, 0};
        rc = tarn_catalog_replace_files(d->cat, t->id, rels, n, &nf, eb);
        if (rc) {
            char dst[PATH_MAX];
            snprintf(dst, sizeof dst, "%s/%s", d->lake_dir, rel);
            unlink(dst);
        }
    }
    if (rc == TARN_OK) {
        tarn_log_info(LOG, "%s.%s: compacted %zu files (%lld bytes) into %s (%lld bytes)", t->db, t->name, n,
                      (long long)bytes_in, rel, (long long)size);
        tarn_errbuf qeb = {{0}};
        if (tarn_query_refresh_table(d->qe, t->db, t->name, &qeb))
            tarn_log_error(LOG, "%s.%s: refreshing the query view failed: %s", t->db, t->name, qeb.msg);
    }
    unlink(staged);
    for (size_t i = 0; abs && i < n; i++) free(abs[i]);
    free(abs);
    free(paths);
    free(rels);
    return rc;
}

/* Compacts the small Parquet files of each partition of t: runs of files,
 * in sequence order, each run adding up to at most the target size. */
static void table_compact(tarn_delivery *d, tarn_table *t)
{
    tarn_errbuf eb = {{0}};
    tarn_file *files = NULL;
    size_t n = 0;
    if (tarn_catalog_live_files(d->cat, t->id, "processed", &files, &n, &eb)) goto out;
    /* live_files is ordered by path, so a partition's files are adjacent. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(files[j].partition, files[i].partition) == 0) j++;
        /* Files of this partition: [i, j). Compact the small ones of each
         * schema version separately (a file keeps the types it was written
         * with; the query views cast per version), in first_seq order. */
        tarn_file *small = calloc(j - i, sizeof *small);
        if (!small) goto out;
        for (size_t v0 = i; v0 < j; v0++) {
            int64_t version = files[v0].schema_version;
            int seen = 0;
            for (size_t k = i; k < v0 && !seen; k++) seen = files[k].schema_version == version;
            if (seen) continue;
            size_t nsmall = 0;
            for (size_t k = i; k < j; k++)
                if (files[k].schema_version == version && (size_t)files[k].bytes < d->opts.compact_target / 2)
                    small[nsmall++] = files[k];
            for (size_t a = 1; a < nsmall; a++)
                for (size_t b = a; b > 0 && small[b - 1].first_seq > small[b].first_seq; b--) {
                    tarn_file tmp = small[b];
                    small[b] = small[b - 1];
                    small[b - 1] = tmp;
                }
            if (nsmall < (size_t)d->opts.compact_min_files) continue;
            size_t start = 0;
            while (start < nsmall) {
                size_t end = start;
                int64_t sum = 0;
                while (end < nsmall && (end == start || sum + small[end].bytes <= (int64_t)d->opts.compact_target))
                    sum += small[end++].bytes;
                if (end - start >= 2 && compact_group(d, t, small + start, end - start, &eb))
                    tarn_log_error(LOG, "%s.%s: compaction failed: %s", t->db, t->name, eb.msg);
                start = end;
            }
        }
        free(small); /* its entries alias files[], freed below */
        i = j;
    }
out:
    tarn_files_free(files, n);
}

/* Deletes files replaced longer than the grace period ago (before_ms) and
 * forgets them. */
static void lake_delete_retired(tarn_delivery *d, int64_t before_ms)
{
    tarn_errbuf eb = {{0}};
    tarn_file *files = NULL;
    size_t n = 0;
    if (tarn_catalog_retired_before(d->cat, before_ms, &files, &n, &eb)) {
        tarn_log_error(LOG, "listing replaced files failed: %s", eb.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", d->lake_dir, files[i].path);
        if (unlink(path) != 0 && errno != ENOENT) {
            tarn_log_warn(LOG, "cannot delete %s: %s", path, strerror(errno));
            continue;
        }
        tarn_catalog_forget_file(d->cat, files[i].path, &eb);
    }
    tarn_files_free(files, n);
}

/* ---------------------------------------------------------- start sweep */

static int path_listed(const tarn_file *files, size_t n, const char *rel)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].path, rel) == 0) return 1;
    return 0;
}

/* Removes files under lake/<rel_dir> that the catalog does not list. */
static void lake_sweep_dir(tarn_delivery *d, const char *rel_dir, const tarn_file *files, size_t n)
{
    char abs[PATH_MAX];
    snprintf(abs, sizeof abs, "%s/%s", d->lake_dir, rel_dir);
    DIR *dir = opendir(abs);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char rel[PATH_MAX], child[PATH_MAX];
        snprintf(rel, sizeof rel, "%s/%s", rel_dir, e->d_name);
        snprintf(child, sizeof child, "%s/%s", d->lake_dir, rel);
        struct stat st;
        if (lstat(child, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            lake_sweep_dir(d, rel, files, n);
        } else if (!path_listed(files, n, rel)) {
            tarn_log_warn(LOG, "removing %s: no catalog entry (left by an interrupted delivery)", rel);
            unlink(child);
        }
    }
    closedir(dir);
}

static int delivery_recover(tarn_delivery *d, tarn_errbuf *eb)
{
    tarn_table_info *infos = NULL;
    size_t n = 0;
    tarn_rm_rf(d->staging_dir);
    int rc = tarn_mkdir_p(d->staging_dir, eb);
    if (rc) return rc;
    /* No query runs yet, so replaced files can go now. */
    lake_delete_retired(d, INT64_MAX);
    if ((rc = tarn_catalog_list_tables(d->cat, &infos, &n, eb))) return rc;
    for (size_t i = 0; i < n && rc == TARN_OK; i++) {
        tarn_file *files = NULL;
        size_t nf = 0;
        if ((rc = tarn_catalog_live_files(d->cat, infos[i].id, NULL, &files, &nf, eb))) break;
        for (int zone = 0; zone < 2; zone++) {
            char rel[PATH_MAX];
            snprintf(rel, sizeof rel, "%s/%s/%s", zone ? "raw" : "processed", infos[i].db, infos[i].name);
            lake_sweep_dir(d, rel, files, nf);
        }
        tarn_files_free(files, nf);
        tarn_table *t = NULL;
        if ((rc = table_open(d, &infos[i], &t, eb))) break;
        if ((rc = table_add_locked(d, t))) {
            tarn_stream_close(t->stream);
            free(t);
        }
    }
    tarn_table_infos_free(infos, n);
    return rc;
}

/* ----------------------------------------------------------------- worker */

/* The absolute time ms from now, for pthread_cond_timedwait (whose
 * condition variables here use the default, realtime clock). */
static struct timespec delivery_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/* Non-zero while some table has records zone z has not published and a
 * delivery of them may still be tried: a stopping worker waits out its
 * retries (see table_fail_locked) before it gives up. Called with d->mu. */
static int zone_pending_locked(tarn_delivery *d, int z)
{
    for (size_t i = 0; i < d->ntables; i++) {
        tarn_table *t = d->tables[i];
        int64_t upto = t->z[ZONE_PROCESSED].seq;
        if (z == ZONE_PROCESSED) tarn_stream_stats(t->stream, &upto, NULL);
        if (t->z[z].seq < upto && t->z[z].retry_at_ms != INT64_MAX) return 1;
    }
    return 0;
}

/* Picks a table that is due for delivery to the processed zone, or NULL.
 * Called with d->mu. */
static tarn_table *worker_pick_locked(tarn_delivery *d, int64_t now, int64_t *from, int64_t *upto, int64_t *bytes)
{
    for (size_t i = 0; i < d->ntables; i++) {
        tarn_table *t = d->tables[i];
        zone_state *zs = &t->z[ZONE_PROCESSED];
        int64_t durable, total;
        tarn_stream_stats(t->stream, &durable, &total);
        if (durable <= zs->seq) {
            t->pending_since_ms = 0;
            continue;
        }
        if (!t->pending_since_ms) t->pending_since_ms = now;
        int due = d->stopping || t->flush_target > zs->seq ||
                  total - atomic_load(&zs->bytes_mark) >= (int64_t)d->opts.buffer_size ||
                  now - t->pending_since_ms >= d->opts.buffer_interval_ms;
        if (!due || now < zs->retry_at_ms) continue;
        *from = zs->seq;
        *upto = durable;
        *bytes = total;
        return t;
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    tarn_delivery *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        int64_t now = tarn_mono_ms(), from = 0, upto = 0, bytes = 0;
        tarn_table *t = worker_pick_locked(d, now, &from, &upto, &bytes);
        if (t) {
            pthread_mutex_unlock(&d->mu);
            tarn_errbuf eb = {{0}};
            int64_t delivered = from, delivered_bytes = 0;
            char dir[PATH_MAX];
            int rc = table_deliver(d, t, from, upto, dir, &delivered, &delivered_bytes, &eb);
            pthread_mutex_lock(&d->mu);
            if (rc) {
                table_fail_locked(d, t, ZONE_PROCESSED, rc, eb.msg[0] ? eb.msg : tarn_err_message(rc));
            } else {
                table_advance_locked(d, t, ZONE_PROCESSED, delivered, delivered_bytes, bytes);
                if (delivered >= upto) t->pending_since_ms = 0;
                pthread_cond_signal(&d->raw_work);
            }
            pthread_mutex_unlock(&d->mu);
            tarn_rm_rf(dir);
            if (rc == TARN_OK) table_trim(d, t);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        if (d->stopping) {
            if (!zone_pending_locked(d, ZONE_PROCESSED)) break;
            struct timespec ts = delivery_deadline(50);
            pthread_cond_timedwait(&d->work, &d->mu, &ts);
            continue;
        }
        if (now - d->last_maintenance_ms >= d->opts.compact_interval_ms) {
            d->last_maintenance_ms = now;
            size_t n = d->ntables;
            tarn_table **snapshot = malloc((n ? n : 1) * sizeof *snapshot);
            if (snapshot) memcpy(snapshot, d->tables, n * sizeof *snapshot);
            pthread_mutex_unlock(&d->mu);
            for (size_t i = 0; snapshot && i < n; i++) table_compact(d, snapshot[i]);
            free(snapshot);
            lake_delete_retired(d, tarn_now_ms() - d->opts.compact_grace_ms);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        struct timespec ts = delivery_deadline(50);
        pthread_cond_timedwait(&d->work, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Picks a table whose raw zone is behind its processed zone, or NULL.
 * Called with d->mu. */
static tarn_table *raw_pick_locked(tarn_delivery *d, int64_t now, int64_t *from, int64_t *upto, int64_t *bytes)
{
    for (size_t i = 0; i < d->ntables; i++) {
        tarn_table *t = d->tables[i];
        zone_state *zs = &t->z[ZONE_RAW];
        if (zs->seq >= t->z[ZONE_PROCESSED].seq || now < zs->retry_at_ms) continue;
        *from = zs->seq;
        *upto = t->z[ZONE_PROCESSED].seq;
        tarn_stream_stats(t->stream, NULL, bytes);
        return t;
    }
    return NULL;
}

static void *raw_worker_main(void *arg)
{
    tarn_delivery *d = arg;
    /* Linux applies a nice value to the one thread named by its id. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), DELIVERY_RAW_NICE) != 0)
        tarn_log_warn(LOG, "cannot lower the raw zone worker's priority: %s", strerror(errno));
    pthread_mutex_lock(&d->mu);
    for (;;) {
        int64_t from = 0, upto = 0, bytes = 0;
        tarn_table *t = raw_pick_locked(d, tarn_mono_ms(), &from, &upto, &bytes);
        if (t) {
            pthread_mutex_unlock(&d->mu);
            tarn_errbuf eb = {{0}};
            int64_t delivered = from, delivered_bytes = 0;
            int rc = table_deliver_raw(d, t, from, upto, &delivered, &delivered_bytes, &eb);
            pthread_mutex_lock(&d->mu);
            if (rc) {
                table_fail_locked(d, t, ZONE_RAW, rc, eb.msg[0] ? eb.msg : tarn_err_message(rc));
                continue;
            }
            table_advance_locked(d, t, ZONE_RAW, delivered, delivered_bytes, bytes);
            pthread_mutex_unlock(&d->mu);
            table_trim(d, t);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        if (d->worker_done && !zone_pending_locked(d, ZONE_RAW)) break;
        struct timespec ts = delivery_deadline(50);
        pthread_cond_timedwait(&d->raw_work, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int tarn_delivery_flush(tarn_delivery *d, tarn_table *t, int64_t timeout_ms, int zones, int64_t *delivered_seq,
                        int64_t *raw_seq, tarn_errbuf *eb)
{
    int64_t target, bytes;
    tarn_stream_stats(t->stream, &target, &bytes);
    int64_t deadline = tarn_mono_ms() + timeout_ms;
    int rc = TARN_OK, nz = zones == TARN_FLUSH_PROCESSED ? 1 : ZONES;
    pthread_mutex_lock(&d->mu);
    int64_t failures[ZONES];
    for (int z = 0; z < ZONES; z++) {
        failures[z] = t->z[z].failures;
        t->z[z].retry_at_ms = 0; /* a flush retries a failed delivery at once */
    }
    if (t->flush_target < target) t->flush_target = target;
    pthread_cond_signal(&d->work);
    pthread_cond_signal(&d->raw_work);
    for (int z = 0; z < nz && rc == TARN_OK; z++) {
        zone_state *zs = &t->z[z];
        while (zs->seq < target) {
            /* A failure of either zone's delivery ends the wait: the raw
             * zone cannot pass the processed one. */
            int failed = -1;
            for (int k = 0; k < nz; k++)
                if (t->z[k].failures != failures[k]) failed = k;
            if (failed >= 0) {
                zone_state *fz = &t->z[failed];
                rc = tarn_errbuf_set(eb, fz->last_error_code ? fz->last_error_code : TARN_EIO,
                                     "delivery to the %s zone failed: %s", zone_names[failed], fz->last_error);
                break;
            }
            int64_t left = deadline - tarn_mono_ms();
            if (left <= 0) {
                rc = tarn_errbuf_set(eb, TARN_ETIMEOUT, "flush of %s.%s timed out (%s zone)", t->db, t->name,
                                     zone_names[z]);
                break;
            }
            struct timespec ts = delivery_deadline(left < 100 ? left : 100);
            pthread_cond_timedwait(&d->done, &d->mu, &ts);
        }
    }
    if (delivered_seq) *delivered_seq = t->z[ZONE_PROCESSED].seq;
    if (raw_seq) *raw_seq = t->z[ZONE_RAW].seq;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int tarn_delivery_status_json(tarn_delivery *d, tarn_buf *out)
{
    pthread_mutex_lock(&d->mu);
    int rc = tarn_buf_append_char(out, '[');
    for (size_t i = 0; i < d->ntables && !rc; i++) {
        tarn_table *t = d->tables[i];
        int64_t durable, bytes;
        tarn_stream_stats(t->stream, &durable, &bytes);
        if (i) rc = tarn_buf_append_char(out, ',');
        if (!rc) rc = tarn_buf_append_str(out, "{\"database\":");
        if (!rc) rc = tarn_buf_append_json_str(out, t->db, strlen(t->db));
        if (!rc) rc = tarn_buf_append_str(out, ",\"name\":");
        if (!rc) rc = tarn_buf_append_json_str(out, t->name, strlen(t->name));
        const zone_state *zp = &t->z[ZONE_PROCESSED], *zr = &t->z[ZONE_RAW];
        if (!rc)
            rc = tarn_buf_printf(out,
                                 ",\"durable_seq\":%lld,\"delivered_seq\":%lld,\"pending_records\":%lld,"
                                 "\"raw_seq\":%lld,\"raw_pending_records\":%lld,\"backlog_bytes\":%lld,\"last_error\":",
                                 (long long)durable, (long long)zp->seq, (long long)(durable - zp->seq),
                                 (long long)zr->seq, (long long)(zp->seq - zr->seq), (long long)(bytes - table_mark(t)));
        if (!rc) rc = zp->last_error[0] ? tarn_buf_append_json_str(out, zp->last_error, strlen(zp->last_error))
                                        : tarn_buf_append_str(out, "null");
        if (!rc) rc = tarn_buf_append_str(out, ",\"raw_last_error\":");
        if (!rc) rc = zr->last_error[0] ? tarn_buf_append_json_str(out, zr->last_error, strlen(zr->last_error))
                                        : tarn_buf_append_str(out, "null");
        if (!rc) rc = tarn_buf_append_char(out, '}');
    }
    if (!rc) rc = tarn_buf_append_char(out, ']');
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* ------------------------------------------------------------ open/close */

int tarn_delivery_open(const tarn_delivery_opts *opts, tarn_catalog *cat, tarn_query_engine *qe, tarn_delivery **out,
                       tarn_errbuf *eb)
{
    tarn_delivery *d = calloc(1, sizeof *d);
    if (!d) return TARN_ENOMEM;
    d->opts = *opts;
    d->cat = cat;
    d->qe = qe;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->done, NULL);
    pthread_cond_init(&d->raw_work, NULL);
    snprintf(d->data_dir, sizeof d->data_dir, "%s", opts->data_dir);
    snprintf(d->lake_dir, sizeof d->lake_dir, "%s/lake", opts->data_dir);
    snprintf(d->staging_dir, sizeof d->staging_dir, "%s/staging", opts->data_dir);
    snprintf(d->stream_dir, sizeof d->stream_dir, "%s/stream", opts->data_dir);
    d->last_maintenance_ms = tarn_mono_ms();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    d->stage_threads = opts->duckdb_threads > 0 ? opts->duckdb_threads : cores > 0 ? (int)cores : 1;
    if (d->stage_threads > TARN_STAGE_MAX_THREADS) d->stage_threads = TARN_STAGE_MAX_THREADS;
    int rc = tarn_mkdir_p(d->lake_dir, eb);
    if (!rc) rc = tarn_mkdir_p(d->stream_dir, eb);
    if (!rc) rc = tarn_writer_open(d->staging_dir, d->lake_dir, opts->duckdb_threads, opts->memory_limit, &d->writer, eb);
    if (!rc) rc = tarn_mkdir_p(d->staging_dir, eb);
    if (!rc) rc = delivery_recover(d, eb);
    if (!rc && pthread_create(&d->worker, NULL, worker_main, d) != 0)
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "cannot start the delivery thread");
    if (!rc) d->worker_started = 1;
    if (!rc && pthread_create(&d->raw_worker, NULL, raw_worker_main, d) != 0)
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "cannot start the raw zone thread");
    if (!rc) d->raw_worker_started = 1;
    if (rc) {
        tarn_delivery_close(d);
        return rc;
    }
    *out = d;
    return TARN_OK;
}

void tarn_delivery_close(tarn_delivery *d)
{
    if (!d) return;
    /* The processed worker delivers everything first; the raw worker then
     * catches up with it. */
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
    if (d->worker_started) pthread_join(d->worker, NULL);
    pthread_mutex_lock(&d->mu);
    d->worker_done = 1;
    pthread_cond_signal(&d->raw_work);
    pthread_mutex_unlock(&d->mu);
    if (d->raw_worker_started) pthread_join(d->raw_worker, NULL);
    for (size_t i = 0; i < d->ntables; i++) {
        tarn_table *t = d->tables[i];
        int64_t durable, bytes;
        tarn_stream_stats(t->stream, &durable, &bytes);
        for (int z = 0; z < ZONES; z++)
            if (durable > t->z[z].seq && t->z[z].failures > 0)
                tarn_log_warn(LOG, "%s.%s: %lld records stay in the log for the %s zone at the next start", t->db,
                              t->name, (long long)(durable - t->z[z].seq), zone_names[z]);
        tarn_stream_close(t->stream);
        free(t);
    }
    free(d->tables);
    tarn_writer_close(d->writer);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->done);
    pthread_cond_destroy(&d->raw_work);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
