/* config.c - see config.h. libyaml's event parser walks the file; each
 * scalar under a known "section.key" path is converted by that key's setter. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

void tarn_config_defaults(tarn_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8470;
    snprintf(c->data_dir, sizeof c->data_dir, "./tarn-data");
    c->max_record = 1 << 20;
    c->max_request = 10 << 20;
    c->max_depth = 64;
    c->max_records = 10000;
    c->max_connections = 256;
    c->max_inflight = (size_t)256 << 20;
    c->max_backlog = (size_t)4 << 30;
    c->max_tables = 1000;
    c->buffer_size = (size_t)64 << 20;
    c->buffer_interval_ms = 1000;
    c->max_batch = (size_t)512 << 20;
    c->compact_target = (size_t)128 << 20;
    c->compact_min_files = 4;
    c->compact_grace_ms = 5 * 60 * 1000;
    c->compact_interval_ms = 10 * 1000;
    c->segment_size = (size_t)64 << 20;
    c->query_max_spill = (size_t)8 << 30;
    c->query_timeout_ms = 60 * 1000;
    c->query_max_rows = 100000;
    c->query_threads = 0;
}

/* Splits "123MiB" into a number and a suffix; returns -1 if malformed. */
static int config_number(const char *s, double *num, const char **suffix)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return -1;
    *num = strtod(s, &end);
    if (errno || *num < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    *suffix = end;
    return 0;
}

int tarn_config_parse_size(const char *s, size_t *out)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1},          {"B", 1},           {"KB", 1e3},           {"MB", 1e6},
                 {"GB", 1e9},      {"KiB", 1024.0},    {"MiB", 1048576.0},    {"GiB", 1073741824.0},
                 {"K", 1024.0},    {"M", 1048576.0},   {"G", 1073741824.0}};
    double num;
    const char *suffix;
    if (config_number(s, &num, &suffix)) return TARN_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(suffix, units[i].suffix) == 0 && (units[i].suffix[0] || suffix[0] == '\0')) {
            double v = num * units[i].mult;
            if (v > 1e15) return TARN_EINVAL;
            *out = (size_t)v;
            return TARN_OK;
        }
    }
    return TARN_EINVAL;
}

int tarn_config_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    double num;
    const char *suffix;
    if (config_number(s, &num, &suffix)) return TARN_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(suffix, units[i].suffix) == 0) {
            double v = num * units[i].mult;
            if (v > 1e13) return TARN_EINVAL;
            *out = (int64_t)v;
            return TARN_OK;
        }
    }
    return TARN_EINVAL;
}

int tarn_config_set_listen(tarn_config *c, const char *addr, tarn_errbuf *eb)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof c->listen_host)
        return tarn_errbuf_set(eb, TARN_EINVAL, "listen address '%s' is not HOST:PORT", addr);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        return tarn_errbuf_set(eb, TARN_EINVAL, "listen address '%s' has a bad port", addr);
    memcpy(c->listen_host, addr, (size_t)(colon - addr));
    c->listen_host[colon - addr] = '\0';
    c->listen_port = (int)port;
    return TARN_OK;
}

enum config_kind { CFG_SIZE, CFG_DURATION, CFG_INT, CFG_STRING, CFG_LISTEN };

struct config_key {
    const char *path;
    enum config_kind kind;
    size_t offset;
    size_t size; /* for CFG_STRING: buffer size; for CFG_INT: sizeof the int */
    double min, max;
};

#define CFG_AT(field) offsetof(tarn_config, field), sizeof(((tarn_config *)0)->field)

static const struct config_key config_keys[] = {
    {"listen", CFG_LISTEN, 0, 0, 0, 0},
    {"data", CFG_STRING, CFG_AT(data_dir), 0, 0},
    {"limits.max_record", CFG_SIZE, CFG_AT(max_record), 64, 256.0 * 1048576},
    {"limits.max_request", CFG_SIZE, CFG_AT(max_request), 64, 4096.0 * 1048576},
    {"limits.max_depth", CFG_INT, CFG_AT(max_depth), 1, 1024},
    {"limits.max_records", CFG_INT, CFG_AT(max_records), 1, 10000000},
    {"limits.max_connections", CFG_INT, CFG_AT(max_connections), 1, 100000},
    {"http.threads", CFG_INT, CFG_AT(http_threads), 0, 64},
    {"limits.max_inflight", CFG_SIZE, CFG_AT(max_inflight), 1048576, 1e12},
    {"limits.max_backlog", CFG_SIZE, CFG_AT(max_backlog), 1048576, 1e15},
    {"limits.max_tables", CFG_INT, CFG_AT(max_tables), 1, 1000000},
    {"buffering.size", CFG_SIZE, CFG_AT(buffer_size), 1024, 16384.0 * 1048576},
    {"buffering.interval", CFG_DURATION, CFG_AT(buffer_interval_ms), 10, 86400000},
    {"buffering.max_batch", CFG_SIZE, CFG_AT(max_batch), 1024, 16384.0 * 1048576},
    {"compaction.target_size", CFG_SIZE, CFG_AT(compact_target), 1024, 1e12},
    {"compaction.min_files", CFG_INT, CFG_AT(compact_min_files), 2, 100000},
    {"compaction.grace", CFG_DURATION, CFG_AT(compact_grace_ms), 0, 86400000.0 * 30},
    {"compaction.interval", CFG_DURATION, CFG_AT(compact_interval_ms), 10, 86400000},
    {"stream.segment_size", CFG_SIZE, CFG_AT(segment_size), 4096, 1e12},
    {"query.timeout", CFG_DURATION, CFG_AT(query_timeout_ms), 1, 86400000},
    {"query.max_rows", CFG_INT, CFG_AT(query_max_rows), 1, 1e9},
    {"query.threads", CFG_INT, CFG_AT(query_threads), 0, 1024},
    {"query.memory_limit", CFG_STRING, CFG_AT(query_memory_limit), 0, 0},
    {"query.max_spill", CFG_SIZE, CFG_AT(query_max_spill), 1048576, 1e15},
};

static void config_store_int(void *field, size_t size, int64_t v)
{
    if (size == sizeof(int)) *(int *)field = (int)v;
    else if (size == sizeof(int64_t)) *(int64_t *)field = v;
}

static int config_apply(tarn_config *c, const char *path, const char *value, const char *file, size_t line,
                        tarn_errbuf *eb)
{
    const struct config_key *k = NULL;
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++)
        if (strcmp(config_keys[i].path, path) == 0) k = &config_keys[i];
    if (!k) return tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: unknown setting '%s'", file, line, path);
    void *field = (char *)c + k->offset;
    size_t sz;
    int64_t ms;
    char *end;
    switch (k->kind) {
    case CFG_LISTEN:
        return tarn_config_set_listen(c, value, eb);
    case CFG_STRING:
        if (strlen(value) >= k->size)
            return tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: '%s' is too long", file, line, path);
        snprintf(field, k->size, "%s", value);
        return TARN_OK;
    case CFG_SIZE:
        if (tarn_config_parse_size(value, &sz) || (double)sz < k->min || (double)sz > k->max)
            return tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: '%s' must be a size between %.0f and %.0f bytes, got '%s'",
                                   file, line, path, k->min, k->max, value);
        *(size_t *)field = sz;
        return TARN_OK;
    case CFG_DURATION:
        if (tarn_config_parse_duration_ms(value, &ms) || (double)ms < k->min || (double)ms > k->max)
            return tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: '%s' must be a duration (e.g. 500ms, 1s, 5m), got '%s'",
                                   file, line, path, value);
        *(int64_t *)field = ms;
        return TARN_OK;
    case CFG_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || (double)v < k->min || (double)v > k->max)
            return tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: '%s' must be an integer between %.0f and %.0f, got '%s'",
                                   file, line, path, k->min, k->max, value);
        if (k->offset == offsetof(tarn_config, max_depth) || k->offset == offsetof(tarn_config, max_records))
            *(size_t *)field = (size_t)v;
        else if (k->offset == offsetof(tarn_config, max_connections))
            *(unsigned *)field = (unsigned)v;
        else
            config_store_int(field, k->size, v);
        return TARN_OK;
    }
    }
    return TARN_EINTERNAL;
}

int tarn_config_load_file(tarn_config *c, const char *path, tarn_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tarn_errbuf_set(eb, TARN_ENOTFOUND, "cannot open config %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = TARN_OK;
    char section[64] = "";
    char key[64] = "";
    int depth = 0;     /* mapping depth: 1 = top level, 2 = inside a section */
    int want_key = 0;  /* next scalar at this depth is a key */
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return TARN_ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    for (int done = 0; !done && rc == TARN_OK;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "YAML syntax error");
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth == 1 && !want_key) {
                snprintf(section, sizeof section, "%s", key);
            } else if (depth >= 2 || (depth == 1 && want_key)) {
                rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: unexpected nested mapping", path, line);
            }
            depth++;
            want_key = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth == 1) section[0] = '\0';
            want_key = 1;
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: lists are not accepted here", path, line);
            break;
        case YAML_ALIAS_EVENT:
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: aliases are not accepted", path, line);
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth == 0) {
                /* An empty document or a bare scalar: only an empty file is fine. */
                if (v[0]) rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: expected a mapping", path, line);
                break;
            }
            if (want_key) {
                if (strlen(v) >= sizeof key) {
                    rc = tarn_errbuf_set(eb, TARN_EINVAL, "%s:%zu: key too long", path, line);
                    break;
                }
                snprintf(key, sizeof key, "%s", v);
                want_key = 0;
            } else {
                char full[160];
                if (depth == 2) snprintf(full, sizeof full, "%s.%s", section, key);
                else snprintf(full, sizeof full, "%s", key);
                rc = config_apply(c, full, v, path, line, eb);
                want_key = 1;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
