/* fault_fsync.c - an LD_PRELOAD shim for test_fsync_failure.py: makes the
 * durable log's fdatasync fail, as a failing disk would.
 *
 * With TARN_FAULT_FSYNC_AFTER=N in the environment, the first N calls of
 * fdatasync or fsync on a log segment (a file named *.log under a "stream"
 * directory) go through; every later one fails with EIO without syncing.
 * Other files (catalog, lake, staging) are never affected. Built by the
 * test with `cc -shared -fPIC`; never part of the server.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long calls;

static int is_log_segment(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 4) return 0;
    path[n] = '\0';
    return strstr(path, "/stream/") != NULL && strcmp(path + n - 4, ".log") == 0;
}

/* Non-zero if this sync must fail. */
static int fault(int fd)
{
    const char *after = getenv("TARN_FAULT_FSYNC_AFTER");
    if (!after || !is_log_segment(fd)) return 0;
    return atomic_fetch_add(&calls, 1) >= atol(after);
}

/* Calls the C library's function name on fd, or fails it with EIO. */
static int sync_or_fail(const char *name, int fd)
{
    if (fault(fd)) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fdatasync(int fd) { return sync_or_fail("fdatasync", fd); }

int fsync(int fd) { return sync_or_fail("fsync", fd); }
