/* replay.c - runs a fuzz target over a saved corpus, without libFuzzer.
 *
 * Linked with any tests/fuzz/fuzz_*.c, it feeds LLVMFuzzerTestOneInput every
 * regular file in the directory given as argv[1], in name order, so the
 * corpus is replayed (under ASan + UBSan) on every test run. A missing or
 * empty directory falls back to a few built-in inputs, so the target always
 * runs. A broken invariant aborts the process, so reaching the summary line
 * means every input passed.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* scandir, alphasort */
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const replay_builtin[] = {
    "", " ", "\n", "{}", "[]", "[{}]", "{\"a\":[1,2.5e-3,\"x\",true,null]}\n{\"b\":{}}\n", "{\"a\":", "[[[[",
    "\"\\uD800\"", "\xff\xfe",
};

static int replay_file(const char *path, int *ran)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *d = realloc(data, cap);
            if (!d) {
                free(data);
                fclose(f);
                return -1;
            }
            data = d;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        if (got == 0) break;
        len += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        perror(path);
        return -1;
    }
    /* Exactly len bytes, as libFuzzer passes them, so overreads show. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(data);
        return -1;
    }
    if (len) memcpy(exact, data, len);
    free(data);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*ran)++;
    return 0;
}

int main(int argc, char **argv)
{
    int ran = 0, failed = 0;
    struct dirent **names = NULL;
    int count = argc > 1 ? scandir(argv[1], &names, NULL, alphasort) : -1;
    for (int i = 0; i < count; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay_file(path, &ran) != 0) failed++;
        free(names[i]);
    }
    free(names);
    if (ran == 0 && failed == 0) {
        for (size_t i = 0; i < sizeof replay_builtin / sizeof replay_builtin[0]; i++) {
            size_t len = strlen(replay_builtin[i]);
            uint8_t *d = malloc(len ? len : 1);
            if (!d) return 1;
            memcpy(d, replay_builtin[i], len);
            LLVMFuzzerTestOneInput(d, len);
            free(d);
            ran++;
        }
    }
    printf("%d passed, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
