/* util.c - see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int errno_code(int e)
{
    switch (e) {
    case ENOENT: return TARN_ENOTFOUND;
    case ENOMEM: return TARN_ENOMEM;
    default: return tarn_err_from_write_errno(e);
    }
}

int tarn_mkdir_p(const char *path, tarn_errbuf *eb)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return tarn_errbuf_set(eb, TARN_EINVAL, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return tarn_errbuf_set(eb, errno_code(errno), "mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return tarn_errbuf_set(eb, errno_code(errno), "mkdir %s: %s", tmp, strerror(errno));
    return TARN_OK;
}

int tarn_fsync_dir(const char *path, tarn_errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return tarn_errbuf_set(eb, errno_code(errno), "open dir %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return tarn_errbuf_set(eb, errno_code(e), "fsync dir %s: %s", path, strerror(e));
    return TARN_OK;
}

int tarn_fsync_parent(const char *path, tarn_errbuf *eb)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof dir) return tarn_errbuf_set(eb, TARN_EINVAL, "path too long");
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) return tarn_fsync_dir(".", eb);
    if (slash == dir) slash[1] = '\0'; else *slash = '\0';
    return tarn_fsync_dir(dir, eb);
}

int tarn_fsync_path(const char *path, tarn_errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tarn_errbuf_set(eb, errno_code(errno), "open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return tarn_errbuf_set(eb, errno_code(e), "fsync %s: %s", path, strerror(e));
    return TARN_OK;
}

int tarn_write_file_atomic(const char *path, const void *data, size_t n, int mode, tarn_errbuf *eb)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return tarn_errbuf_set(eb, TARN_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return tarn_errbuf_set(eb, errno_code(errno), "create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return tarn_errbuf_set(eb, errno_code(e), "write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return tarn_errbuf_set(eb, errno_code(e), "fsync %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tarn_errbuf_set(eb, errno_code(e), "rename %s: %s", path, strerror(e));
    }
    return tarn_fsync_parent(path, eb);
}

int tarn_read_file(const char *path, size_t max, char **out, size_t *out_len, tarn_errbuf *eb)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tarn_errbuf_set(eb, errno_code(errno), "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > max) {
        close(fd);
        return tarn_errbuf_set(eb, TARN_ETOOBIG, "%s: larger than %zu bytes", path, max);
    }
    size_t size = (size_t)st.st_size;
    char *p = malloc(size + 1);
    if (!p) {
        close(fd);
        return TARN_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    p[got] = '\0';
    *out = p;
    if (out_len) *out_len = got;
    return TARN_OK;
}

int tarn_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? TARN_OK : TARN_EIO;
    if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 ? TARN_OK : TARN_EIO;
    DIR *d = opendir(path);
    if (!d) return TARN_EIO;
    struct dirent *e;
    int rc = TARN_OK;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) {
            rc = TARN_EIO;
            continue;
        }
        if (tarn_rm_rf(child)) rc = TARN_EIO;
    }
    closedir(d);
    if (rmdir(path) != 0) rc = TARN_EIO;
    return rc;
}

int64_t tarn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tarn_now_ms(void) { return tarn_now_us() / 1000; }

int64_t tarn_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tarn_mono_ms(void) { return tarn_mono_us() / 1000; }

static void split_time(int64_t us, struct tm *tm, long *micros)
{
    int64_t secs = us / 1000000;
    long rem = (long)(us % 1000000);
    if (rem < 0) {
        rem += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    gmtime_r(&t, tm);
    *micros = rem;
}

int64_t tarn_utc_day(int64_t us)
{
    return us >= 0 ? us / 86400000000LL : (us - 86399999999LL) / 86400000000LL;
}

void tarn_format_date(int64_t us, char *out)
{
    struct tm tm;
    long micros;
    split_time(us, &tm, &micros);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void tarn_format_timestamp(int64_t us, char *out)
{
    struct tm tm;
    long micros;
    split_time(us, &tm, &micros);
    size_t n = strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, 13, ".%06ld", micros % 1000000);
}

void tarn_format_iso8601(int64_t us, char *out)
{
    struct tm tm;
    long micros;
    split_time(us, &tm, &micros);
    (void)micros;
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tarn_name_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
        if (n >= 128) return 0;
    }
    return n > 0;
}

int tarn_db_name_reserved(const char *s)
{
    static const char *const reserved[] = {"memory", "system", "temp", "main", "information_schema", "pg_catalog"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(s, reserved[i]) == 0) return 1;
    return 0;
}

int tarn_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? TARN_OK : TARN_EINTERNAL;
}

void tarn_hex(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int tarn_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= x[i] ^ y[i];
    return d == 0;
}
