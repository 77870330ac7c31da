/* err.c - the table behind err.h. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct err_row {
    int code;
    int http;
    const char *name;
    const char *msg;
};

static const struct err_row err_rows[] = {
#define TARN__ERR_ROW(name, value, http, msg) {value, http, #name, msg},
    TARN_ERRNO_MAP(TARN__ERR_ROW)
#undef TARN__ERR_ROW
};

static const struct err_row *err_find(int code)
{
    for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
        if (err_rows[i].code == code) return &err_rows[i];
    for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
        if (err_rows[i].code == TARN_EINTERNAL) return &err_rows[i];
    return &err_rows[0];
}

const char *tarn_err_name(int code) { return err_find(code)->name; }
const char *tarn_err_message(int code) { return err_find(code)->msg; }
int tarn_err_http_status(int code) { return err_find(code)->http; }

int tarn_err_from_write_errno(int e) { return e == ENOSPC || e == EDQUOT ? TARN_ENOSPC : TARN_EIO; }

int tarn_errbuf_set(tarn_errbuf *eb, int code, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
