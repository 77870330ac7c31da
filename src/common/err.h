/* err.h - Tarn's error codes.
 *
 * Every fallible function returns 0 (TARN_OK) or one negative code from this
 * table. The table gives each code a name, a default message and the HTTP
 * status the API answers with, so a code travels unchanged from the layer that
 * detects it to the reply. Detail text (which record, which byte, which file)
 * goes into a caller-supplied tarn_errbuf, never into a global.
 */
#ifndef TARN_ERR_H
#define TARN_ERR_H

#include <stddef.h>

/*        name              value  http  message */
#define TARN_ERRNO_MAP(X)                                                   \
    X(TARN_OK,              0,    200, "success")                          \
    X(TARN_EINVAL,         -1,    400, "invalid argument")                 \
    X(TARN_ENOMEM,         -2,    500, "out of memory")                    \
    X(TARN_EIO,            -3,    500, "input/output error")               \
    X(TARN_ENOSPC,         -4,    507, "no space left on device")          \
    X(TARN_ETOOBIG,        -5,    413, "too large")                        \
    X(TARN_EJSON,          -6,    400, "malformed JSON")                   \
    X(TARN_EDEPTH,         -7,    400, "JSON nesting too deep")            \
    X(TARN_ENOTFOUND,      -8,    404, "not found")                        \
    X(TARN_EAUTH,          -9,    401, "missing or invalid token")         \
    X(TARN_EFORBIDDEN,     -10,   403, "forbidden")                        \
    X(TARN_ECONFLICT,      -11,   409, "conflict")                         \
    X(TARN_ETIMEOUT,       -12,   504, "timed out")                        \
    X(TARN_EMEDIA,         -13,   415, "unsupported media type")           \
    X(TARN_ECORRUPT,       -14,   500, "corrupt data")                     \
    X(TARN_ECLOSED,        -15,   503, "shutting down")                    \
    X(TARN_ESQL,           -16,   400, "SQL error")                        \
    X(TARN_EDENIED,        -17,   400, "statement not allowed")            \
    X(TARN_EMETHOD,        -18,   405, "method not allowed")               \
    X(TARN_EINTERNAL,      -19,   500, "internal error")                   \
    X(TARN_EUNAVAILABLE,   -20,   503, "temporarily unavailable")         \
    X(TARN_EUNSUPPORTED,   -21,   500, "not supported by this path")  \
    X(TARN_ELIMIT,         -22,   400, "limit reached")

enum tarn_err {
#define TARN__ERR_ENUM(name, value, http, msg) name = value,
    TARN_ERRNO_MAP(TARN__ERR_ENUM)
#undef TARN__ERR_ENUM
};

/* Name ("TARN_EINVAL"), default message and HTTP status of a code.
 * Unknown codes map to TARN_EINTERNAL. Returned strings are static. */
const char *tarn_err_name(int code);
const char *tarn_err_message(int code);
int tarn_err_http_status(int code);

/* The code of a failed write, sync or create: TARN_ENOSPC when the disk or
 * the quota is full (ENOSPC, EDQUOT), TARN_EIO otherwise. */
int tarn_err_from_write_errno(int e);

/* Caller-owned detail buffer. Functions that fail write one line here.
 * tarn_errbuf_set overwrites; a NULL errbuf is accepted and ignored. */
typedef struct tarn_errbuf {
    char msg[512];
} tarn_errbuf;

#if defined(__GNUC__)
#define TARN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TARN_PRINTF(a, b)
#endif

/* Writes the formatted detail and returns code, so callers can write
 * `return tarn_errbuf_set(eb, TARN_EINVAL, "bad name '%s'", n);`. */
int tarn_errbuf_set(tarn_errbuf *eb, int code, const char *fmt, ...) TARN_PRINTF(3, 4);

#endif
