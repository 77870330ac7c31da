/* Unit tests for schema widening (src/delivery/schema.c). */
#include "delivery/schema.h"

#include <stdlib.h>

#include "test.h"

static char *norm(const char *text)
{
    tarn_type *t = NULL;
    tarn_errbuf eb = {{0}};
    if (tarn_type_parse(text, &t, &eb)) return NULL;
    tarn_buf b;
    tarn_buf_init(&b, 0);
    tarn_type_format(t, &b);
    tarn_type_free(t);
    return tarn_buf_steal(&b);
}

static char *merged(const char *a, const char *b)
{
    tarn_type *ta = NULL, *tb = NULL;
    tarn_errbuf eb = {{0}};
    if (tarn_type_parse(a, &ta, &eb) || tarn_type_parse(b, &tb, &eb)) return NULL;
    tarn_type *m = tarn_type_merge(ta, tb);
    tarn_buf out;
    tarn_buf_init(&out, 0);
    tarn_type_format(m, &out);
    tarn_type_free(ta);
    tarn_type_free(tb);
    tarn_type_free(m);
    return tarn_buf_steal(&out);
}

#define CHECK_NORM(in, want)          \
    do {                              \
        char *got__ = norm(in);       \
        CHECK_EQ_STR(got__, want);    \
        free(got__);                  \
    } while (0)

#define CHECK_MERGE(a, b, want)                 \
    do {                                        \
        char *got__ = merged(a, b);             \
        CHECK_EQ_STR(got__, want);              \
        free(got__);                            \
        got__ = merged(b, a);                   \
        if (strncmp(want, "STRUCT", 6) != 0) CHECK_EQ_STR(got__, want); \
        free(got__);                            \
    } while (0)

TEST(normalizes_inferred_types)
{
    CHECK_NORM("INTEGER", "BIGINT");
    CHECK_NORM("UBIGINT", "HUGEINT");
    CHECK_NORM("HUGEINT", "HUGEINT");
    CHECK_NORM("DECIMAL(18,3)", "DOUBLE");
    CHECK_NORM("JSON", "VARCHAR");
    CHECK_NORM("MAP(VARCHAR, JSON)", "VARCHAR");
    CHECK_NORM("JSON[]", "VARCHAR[]");
    CHECK_NORM("TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE");
    CHECK_NORM("STRUCT(first VARCHAR, \"last name\" VARCHAR, \"q\"\"x\" INTEGER)",
               "STRUCT(\"first\" VARCHAR, \"last name\" VARCHAR, \"q\"\"x\" BIGINT)");
    CHECK_NORM("STRUCT(a STRUCT(b INTEGER[])[])", "STRUCT(\"a\" STRUCT(\"b\" BIGINT[])[])");
}

TEST(rejects_bad_type_text)
{
    tarn_type *t = NULL;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_type_parse("STRUCT(a", &t, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_type_parse("BIGINT[", &t, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_type_parse("", &t, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_type_parse("BIGINT junk(", &t, &eb), TARN_EINVAL);
    CHECK(eb.msg[0] != '\0');
    /* Deep nesting is refused, not a stack overflow. */
    char deep[4000];
    size_t n = 0;
    for (int i = 0; i < 300; i++) n += (size_t)sprintf(deep + n, "STRUCT(a ");
    deep[n] = '\0';
    CHECK_EQ_INT(tarn_type_parse(deep, &t, &eb), TARN_EINVAL);
}

TEST(widening_rules)
{
    CHECK_MERGE("BIGINT", "BIGINT", "BIGINT");
    CHECK_MERGE("BIGINT", "DOUBLE", "DOUBLE");
    CHECK_MERGE("BIGINT", "HUGEINT", "HUGEINT");
    CHECK_MERGE("HUGEINT", "DOUBLE", "DOUBLE");
    CHECK_MERGE("BIGINT", "VARCHAR", "VARCHAR");
    CHECK_MERGE("DOUBLE", "VARCHAR", "VARCHAR");
    CHECK_MERGE("BOOLEAN", "BIGINT", "VARCHAR");
    CHECK_MERGE("DATE", "TIMESTAMP", "TIMESTAMP");
    CHECK_MERGE("TIMESTAMP", "VARCHAR", "VARCHAR");
    CHECK_MERGE("BIGINT[]", "DOUBLE[]", "DOUBLE[]");
    CHECK_MERGE("STRUCT(a BIGINT)", "BIGINT", "VARCHAR");
    CHECK_MERGE("STRUCT(a BIGINT)", "BIGINT[]", "VARCHAR");
    CHECK_MERGE("STRUCT(a BIGINT, b VARCHAR)", "STRUCT(c BOOLEAN, a DOUBLE)",
                "STRUCT(\"a\" DOUBLE, \"b\" VARCHAR, \"c\" BOOLEAN)");
    CHECK_MERGE("STRUCT(s STRUCT(x BIGINT))[]", "STRUCT(s STRUCT(y VARCHAR))[]",
                "STRUCT(\"s\" STRUCT(\"x\" BIGINT, \"y\" VARCHAR))[]");
    /* NULL: no value seen (a field only null, a list only empty): changes nothing. */
    CHECK_MERGE("BIGINT", "NULL", "BIGINT");
    CHECK_MERGE("STRUCT(a BIGINT)", "NULL", "STRUCT(\"a\" BIGINT)");
    CHECK_MERGE("STRUCT(p BIGINT)[]", "NULL[]", "STRUCT(\"p\" BIGINT)[]");
    CHECK_MERGE("STRUCT(a BIGINT, b VARCHAR)", "STRUCT(a NULL, b NULL)", "STRUCT(\"a\" BIGINT, \"b\" VARCHAR)");
    CHECK_MERGE("STRUCT(a STRUCT(x DOUBLE))", "STRUCT(a STRUCT(x NULL))", "STRUCT(\"a\" STRUCT(\"x\" DOUBLE))");
}

/* DuckDB's JSON, as the batch inference reads it: NULL, for
 * tarn_writer_infer to resolve. Plain parsing keeps JSON as VARCHAR. */
TEST(inferred_json_parses_as_null)
{
    static const char *cases[][2] = {
        {"JSON", "NULL"},
        {"JSON[]", "NULL[]"},
        {"STRUCT(k JSON, l JSON[], n BIGINT)", "STRUCT(\"k\" NULL, \"l\" NULL[], \"n\" BIGINT)"},
        {"STRUCT(\"JSON\" JSON)", "STRUCT(\"JSON\" NULL)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tarn_type *t = NULL;
        tarn_errbuf eb = {{0}};
        REQUIRE(tarn_type_parse_inferred(cases[i][0], &t, &eb) == TARN_OK);
        tarn_buf out;
        tarn_buf_init(&out, 4096);
        CHECK_EQ_INT(tarn_type_format(t, &out), TARN_OK);
        CHECK_EQ_STR(out.data, cases[i][1]);
        tarn_buf_free(&out);
        tarn_type_free(t);
    }
    CHECK_NORM("STRUCT(k JSON)", "STRUCT(\"k\" VARCHAR)");
}

/* What is still NULL after the merge is a new column or field seen only as
 * null so far: VARCHAR, as the catalog stores it. */
TEST(column_merge_resolves_null)
{
    tarn_column cur[] = {{"n", "BIGINT"}, {"s", "STRUCT(k BIGINT)"}, {"l", "STRUCT(p BIGINT)[]"}};
    tarn_column batch[] = {{"n", "NULL"}, {"s", "STRUCT(k NULL, j NULL)"}, {"l", "NULL[]"},
                           {"z", "NULL"}, {"e", "NULL[]"}, {"t", "STRUCT(a NULL, b BIGINT)"}};
    tarn_column *out = NULL;
    size_t n = 0;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_columns_merge(cur, 3, batch, 6, NULL, 0, &out, &n, &eb) == 0);
    REQUIRE(n == 6);
    static const char *want[][2] = {{"n", "BIGINT"},
                                    {"s", "STRUCT(\"k\" BIGINT, \"j\" VARCHAR)"},
                                    {"l", "STRUCT(\"p\" BIGINT)[]"},
                                    {"z", "VARCHAR"},
                                    {"e", "VARCHAR[]"},
                                    {"t", "STRUCT(\"a\" VARCHAR, \"b\" BIGINT)"}};
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_STR(out[i].name, want[i][0]);
        CHECK_EQ_STR(out[i].type, want[i][1]);
    }
    tarn_columns_free(out, n);
}

TEST(column_lists_merge_in_place_and_append)
{
    tarn_column cur[] = {{"source", "VARCHAR"}, {"temp", "BIGINT"}, {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
    tarn_column batch[] = {{"temp", "DOUBLE"}, {"extra", "BOOLEAN"}, {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
    const char *trailing[] = {"_ingested_at", "_seq"};
    tarn_column *out = NULL;
    size_t n = 0;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_columns_merge(cur, 4, batch, 4, trailing, 2, &out, &n, &eb) == 0);
    REQUIRE(n == 5);
    CHECK_EQ_STR(out[0].name, "source");
    CHECK_EQ_STR(out[0].type, "VARCHAR");
    CHECK_EQ_STR(out[1].name, "temp");
    CHECK_EQ_STR(out[1].type, "DOUBLE");
    CHECK_EQ_STR(out[2].name, "extra");
    CHECK_EQ_STR(out[3].name, "_ingested_at");
    CHECK_EQ_STR(out[4].name, "_seq");
    CHECK(!tarn_columns_equal(cur, 4, out, n));
    CHECK(tarn_columns_equal(out, n, out, n));
    tarn_columns_free(out, n);

    /* First batch: nothing current. */
    REQUIRE(tarn_columns_merge(NULL, 0, batch, 4, trailing, 2, &out, &n, &eb) == 0);
    REQUIRE(n == 4);
    CHECK_EQ_STR(out[0].name, "temp");
    CHECK_EQ_STR(out[3].name, "_seq");
    tarn_columns_free(out, n);
}

TEST(hugeint_narrows_to_bigint_for_a_first_attempt)
{
    tarn_column cols[2];
    cols[0].name = strdup("big");
    cols[0].type = strdup("HUGEINT");
    cols[1].name = strdup("s");
    cols[1].type = strdup("STRUCT(\"HUGEINT\" HUGEINT, x VARCHAR)[]");
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_columns_narrow_hugeint(cols, 2, &eb), 2);
    CHECK_EQ_STR(cols[0].type, "BIGINT");
    CHECK_EQ_STR(cols[1].type, "STRUCT(\"HUGEINT\" BIGINT, \"x\" VARCHAR)[]");
    CHECK_EQ_INT(tarn_columns_narrow_hugeint(cols, 2, &eb), 0);
    for (int i = 0; i < 2; i++) {
        free(cols[i].name);
        free(cols[i].type);
    }
}

TEST(guessed_string_types_become_varchar_for_a_last_attempt)
{
    tarn_column cols[4];
    const char *names[] = {"day", "o", "_ingested_at", "n"};
    const char *types[] = {"DATE", "STRUCT(at TIMESTAMP, u UUID, t TIME, z TIMESTAMP WITH TIME ZONE, n BIGINT)[]",
                           "TIMESTAMP", "DOUBLE"};
    for (int i = 0; i < 4; i++) {
        cols[i].name = strdup(names[i]);
        cols[i].type = strdup(types[i]);
    }
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_columns_text_as_varchar(cols, 4, "_ingested_at", &eb), 2);
    CHECK_EQ_STR(cols[0].type, "VARCHAR");
    CHECK_EQ_STR(cols[1].type, "STRUCT(\"at\" VARCHAR, \"u\" VARCHAR, \"t\" VARCHAR, \"z\" VARCHAR, \"n\" BIGINT)[]");
    CHECK_EQ_STR(cols[2].type, "TIMESTAMP");
    CHECK_EQ_STR(cols[3].type, "DOUBLE");
    CHECK_EQ_INT(tarn_columns_text_as_varchar(cols, 4, NULL, &eb), 1);
    CHECK_EQ_STR(cols[2].type, "VARCHAR");
    for (int i = 0; i < 4; i++) {
        free(cols[i].name);
        free(cols[i].type);
    }
}

int main(void)
{
    RUN(normalizes_inferred_types);
    RUN(rejects_bad_type_text);
    RUN(widening_rules);
    RUN(inferred_json_parses_as_null);
    RUN(column_merge_resolves_null);
    RUN(column_lists_merge_in_place_and_append);
    RUN(hugeint_narrows_to_bigint_for_a_first_attempt);
    RUN(guessed_string_types_become_varchar_for_a_last_attempt);
    return test_main_end();
}
