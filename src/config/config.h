/* config.h - server configuration: defaults, a YAML file, command-line flags.
 *
 * Later sources override earlier ones: built-in defaults, then the YAML file
 * given with --config, then --data / --listen. The YAML file is a mapping of
 * sections; unknown keys are errors (a typo must not silently keep a
 * default). Sizes accept a plain byte count or a suffix (KB, MB, GB, KiB, MiB,
 * GiB); durations a plain number of milliseconds or a suffix (ms, s, m, h).
 *
 *   listen: 127.0.0.1:8470
 *   data: ./tarn-data
 *   limits:    {max_record: 1MiB, max_request: 10MiB, max_depth: 64,
 *               max_records: 10000, max_connections: 256, max_inflight: 256MiB,
 *               max_backlog: 4GiB, max_tables: 1000}
 *   buffering: {size: 64MiB, interval: 1s}
 *   compaction: {target_size: 128MiB, min_files: 4, grace: 5m, interval: 10s}
 *   stream:    {segment_size: 64MiB}
 *   http:      {threads: 0}        (HTTP threads; 0 = one per core)
 *   query:     {timeout: 60s, max_rows: 100000, threads: 0, memory_limit: "", max_spill: 8GiB}
 */
#ifndef TARN_CONFIG_H
#define TARN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct tarn_config {
    char listen_host[64];
    int listen_port;
    char data_dir[1024];

    size_t max_record;
    size_t max_request;
    size_t max_depth;
    size_t max_records;
    unsigned max_connections;
    int http_threads;         /* libmicrohttpd's threads, each with its epoll loop; 0 = one per core */
    size_t max_inflight;      /* request bodies held in memory at once, all connections together */
    size_t max_backlog;       /* per table: acknowledged, not yet delivered bytes before ingest answers 503 */
    int max_tables;           /* tables a first write may create; each holds a log (two descriptors, a thread) */

    size_t buffer_size;
    int64_t buffer_interval_ms;
    size_t max_batch;

    size_t compact_target;
    int compact_min_files;
    int64_t compact_grace_ms;
    int64_t compact_interval_ms;

    size_t segment_size;

    int64_t query_timeout_ms;
    int64_t query_max_rows;
    int query_threads;
    char query_memory_limit[32];
    size_t query_max_spill;   /* bytes DuckDB may spill to DATA/tmp for the queries running at once */
} tarn_config;

/* Fills c with the built-in defaults. */
void tarn_config_defaults(tarn_config *c);
/* Applies a YAML file on top of c. Errors name the file, line and key. */
int tarn_config_load_file(tarn_config *c, const char *path, tarn_errbuf *eb);
/* Parses "HOST:PORT" into c (listen_host, listen_port). */
int tarn_config_set_listen(tarn_config *c, const char *addr, tarn_errbuf *eb);

/* Exposed for tests: parse a size ("64MiB") / duration ("1s") value. */
int tarn_config_parse_size(const char *s, size_t *out);
int tarn_config_parse_duration_ms(const char *s, int64_t *out);

#endif
