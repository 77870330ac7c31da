/* Unit tests for configuration loading (src/config/config.c). */
#include "config/config.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

#include "test.h"

/* One directory for every file the tests write, removed at the end. */
static char *yaml_dir;

static char *write_yaml(const char *text)
{
    static char path[512];
    if (!yaml_dir) yaml_dir = test_tmpdir("config");
    snprintf(path, sizeof path, "%s/tarn.yaml", yaml_dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

TEST(defaults_match_the_documented_limits)
{
    tarn_config c;
    tarn_config_defaults(&c);
    CHECK_EQ_STR(c.listen_host, "127.0.0.1");
    CHECK_EQ_INT(c.listen_port, 8470);
    CHECK_EQ_STR(c.data_dir, "./tarn-data");
    CHECK_EQ_INT(c.max_record, 1 << 20);
    CHECK_EQ_INT(c.max_request, 10 << 20);
    CHECK_EQ_INT(c.max_depth, 64);
    CHECK_EQ_INT(c.max_records, 10000);
    CHECK_EQ_INT(c.max_inflight, 256 << 20);
    CHECK_EQ_INT(c.max_backlog, (size_t)4 << 30);
    CHECK_EQ_INT(c.max_tables, 1000);
    CHECK_EQ_INT(c.query_max_spill, (size_t)8 << 30);
    CHECK_EQ_INT(c.buffer_size, 64 << 20);
    CHECK_EQ_INT(c.buffer_interval_ms, 1000);
    CHECK_EQ_INT(c.max_batch, (size_t)512 << 20);
    CHECK_EQ_INT(c.compact_target, 128 << 20);
    CHECK_EQ_INT(c.query_timeout_ms, 60000);
    CHECK_EQ_INT(c.query_max_rows, 100000);
    CHECK_EQ_INT(c.http_threads, 0); /* one per core */
}

TEST(sizes_and_durations)
{
    size_t sz;
    int64_t ms;
    CHECK(tarn_config_parse_size("64MiB", &sz) == 0 && sz == (size_t)64 << 20);
    CHECK(tarn_config_parse_size("10 MB", &sz) == 0 && sz == 10000000);
    CHECK(tarn_config_parse_size("4096", &sz) == 0 && sz == 4096);
    CHECK(tarn_config_parse_size("1.5GiB", &sz) == 0 && sz == (size_t)1536 << 20);
    CHECK(tarn_config_parse_size("12 parsecs", &sz) != 0);
    CHECK(tarn_config_parse_size("-1", &sz) != 0);
    CHECK(tarn_config_parse_duration_ms("1s", &ms) == 0 && ms == 1000);
    CHECK(tarn_config_parse_duration_ms("250ms", &ms) == 0 && ms == 250);
    CHECK(tarn_config_parse_duration_ms("5m", &ms) == 0 && ms == 300000);
    CHECK(tarn_config_parse_duration_ms("100", &ms) == 0 && ms == 100);
    CHECK(tarn_config_parse_duration_ms("soon", &ms) != 0);
}

TEST(file_overrides_defaults)
{
    const char *path = write_yaml("listen: 0.0.0.0:9000\n"
                                  "data: /var/lib/tarn\n"
                                  "limits:\n  max_record: 2MiB\n  max_depth: 32\n  max_backlog: 512MiB\n  max_tables: 20\n"
                                  "buffering:\n  size: 8MiB\n  interval: 250ms\n  max_batch: 32MiB\n"
                                  "http:\n  threads: 3\n"
                                  "query:\n  timeout: 5s\n  max_rows: 10\n  memory_limit: 2GB\n  max_spill: 1GiB\n");
    tarn_config c;
    tarn_config_defaults(&c);
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_config_load_file(&c, path, &eb) == 0);
    CHECK_EQ_STR(c.listen_host, "0.0.0.0");
    CHECK_EQ_INT(c.listen_port, 9000);
    CHECK_EQ_STR(c.data_dir, "/var/lib/tarn");
    CHECK_EQ_INT(c.max_record, 2 << 20);
    CHECK_EQ_INT(c.max_depth, 32);
    CHECK_EQ_INT(c.max_backlog, 512 << 20);
    CHECK_EQ_INT(c.max_tables, 20);
    CHECK_EQ_INT(c.buffer_size, 8 << 20);
    CHECK_EQ_INT(c.buffer_interval_ms, 250);
    CHECK_EQ_INT(c.max_batch, 32 << 20);
    CHECK_EQ_INT(c.query_timeout_ms, 5000);
    CHECK_EQ_INT(c.query_max_rows, 10);
    CHECK_EQ_STR(c.query_memory_limit, "2GB");
    CHECK_EQ_INT(c.query_max_spill, 1 << 30);
    CHECK_EQ_INT(c.http_threads, 3);
    CHECK_EQ_INT(c.max_records, 10000); /* untouched */
}

TEST(bad_files_name_the_line_and_key)
{
    tarn_config c;
    tarn_errbuf eb = {{0}};
    tarn_config_defaults(&c);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("limits:\n  max_recrod: 5\n"), &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, ":2:") != NULL && strstr(eb.msg, "limits.max_recrod") != NULL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("buffering:\n  size: lots\n"), &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "buffering.size") != NULL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("limits: [1, 2]\n"), &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("listen: nope\n"), &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("a: b: c\n"), &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_config_load_file(&c, "/nonexistent/tarn.yaml", &eb), TARN_ENOTFOUND);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("limits:\n  max_depth: 0\n"), &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("limits:\n  max_backlog: 1KiB\n"), &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "limits.max_backlog") != NULL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("limits:\n  max_tables: 0\n"), &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "limits.max_tables") != NULL);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("http:\n  threads: 65\n"), &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "http.threads") != NULL);
    /* Nothing of the failed files changed the defaults. */
    CHECK_EQ_INT(c.max_depth, 64);
    CHECK_EQ_INT(c.buffer_size, 64 << 20);
}

TEST(empty_file_keeps_defaults)
{
    tarn_config c;
    tarn_errbuf eb = {{0}};
    tarn_config_defaults(&c);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml(""), &eb), 0);
    CHECK_EQ_INT(tarn_config_load_file(&c, write_yaml("# only a comment\n"), &eb), 0);
    CHECK_EQ_INT(c.listen_port, 8470);
}

int main(void)
{
    RUN(defaults_match_the_documented_limits);
    RUN(sizes_and_durations);
    RUN(file_overrides_defaults);
    RUN(bad_files_name_the_line_and_key);
    RUN(empty_file_keeps_defaults);
    if (yaml_dir) {
        tarn_rm_rf(yaml_dir);
        free(yaml_dir);
    }
    return test_main_end();
}
