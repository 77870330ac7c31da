/* test.h - the unit-test harness: one file, no dependencies.
 *
 * A test file defines functions with TEST(name) and lists them in main with
 * RUN(name). CHECK records a failure and goes on; REQUIRE returns from the
 * test. test_main_end prints "N passed, M failed" and returns the exit code.
 */
#ifndef TARN_TEST_H
#define TARN_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__passed, test__failed, test__cur_failed;
static const char *test__cur;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("  FAIL %s: %s:%d: %s\n", test__cur, __FILE__, __LINE__, #cond); \
            test__cur_failed = 1;                                                    \
        }                                                                            \
    } while (0)

/* Evaluates cond once (it may have side effects). */
#define REQUIRE(cond)                                                                \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("  FAIL %s: %s:%d: %s\n", test__cur, __FILE__, __LINE__, #cond); \
            test__cur_failed = 1;                                                    \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                          \
    do {                                                                                            \
        long long test__a = (long long)(a), test__b = (long long)(b);                               \
        if (test__a != test__b) {                                                                   \
            printf("  FAIL %s: %s:%d: %s == %s (%lld != %lld)\n", test__cur, __FILE__, __LINE__, #a, \
                   #b, test__a, test__b);                                                           \
            test__cur_failed = 1;                                                                   \
        }                                                                                           \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                            \
    do {                                                                                              \
        const char *test__a = (a), *test__b = (b);                                                    \
        if (!test__a || !test__b || strcmp(test__a, test__b) != 0) {                                  \
            printf("  FAIL %s: %s:%d: %s == %s (\"%s\" != \"%s\")\n", test__cur, __FILE__, __LINE__, #a, \
                   #b, test__a ? test__a : "(null)", test__b ? test__b : "(null)");                   \
            test__cur_failed = 1;                                                                     \
        }                                                                                             \
    } while (0)

#define RUN(name)                                  \
    do {                                           \
        test__cur = #name;                         \
        test__cur_failed = 0;                      \
        name();                                    \
        if (test__cur_failed) {                    \
            test__failed++;                        \
            printf("not ok %s\n", #name);          \
        } else {                                   \
            test__passed++;                        \
            printf("ok %s\n", #name);              \
        }                                          \
        fflush(stdout);                            \
    } while (0)

static inline int test_main_end(void)
{
    printf("%d passed, %d failed\n", test__passed, test__failed);
    return test__failed ? 1 : 0;
}

/* A fresh temporary directory for a test; the caller frees the string. */
/* printf into a new malloc'd string (abort on out of memory). */
static inline char *text_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *text_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = malloc((size_t)(n < 0 ? 0 : n) + 1);
    if (!out) abort();
    va_start(ap, fmt);
    vsnprintf(out, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
    va_end(ap);
    return out;
}

static inline char *test_tmpdir(const char *tag)
{
    char tmpl[256];
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/tarn-%s-XXXXXX", base ? base : "/tmp", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

#endif
