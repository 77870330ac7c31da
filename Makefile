# Tarn build. `make` builds build/tarn; `make run` installs what is missing,
# builds and starts the server; `make test` runs every test.
#
# DuckDB comes from scripts/fetch-duckdb.sh (cached in ~/.cache/tarn). To use
# another install: make DUCKDB_INCLUDE=/path/include DUCKDB_LIB=/path/lib

CC        ?= cc
TARN_CACHE ?= $(HOME)/.cache/tarn
DUCKDB_DIR ?= $(TARN_CACHE)/duckdb-1.5.6
DUCKDB_INCLUDE ?= $(DUCKDB_DIR)/include
DUCKDB_LIB ?= $(DUCKDB_DIR)/lib
WERROR    ?= $(if $(CI),-Werror,)
OPT       ?= -O2

# -Wno-format-truncation: paths are built in PATH_MAX buffers from a data
# directory checked at start-up and names of at most 128 characters.
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation \
              -Wstrict-prototypes -Wmissing-prototypes -Wshadow $(WERROR) \
              -Isrc -isystem $(DUCKDB_INCLUDE) -pthread
CFLAGS   += $(OPT) $(CFLAGS_BASE)
LDLIBS    = -Lbuild/lib -lduckdb -lmicrohttpd -lcurl -ljansson -lsqlite3 -lyaml -ldeflate -lz -lcrypto -lpthread -lm
RPATH     = -Wl,-rpath,'$$ORIGIN/lib' -Wl,-rpath,'$$ORIGIN/../lib'

SRC       = $(sort $(wildcard src/*/*.c))
LIB_SRC   = $(filter-out src/main/%,$(SRC))
OBJ       = $(SRC:src/%.c=build/obj/%.o)
LIB_OBJ   = $(LIB_SRC:src/%.c=build/obj/%.o)
ASAN_OBJ  = $(LIB_SRC:src/%.c=build/asan/%.o)
UNIT_SRC  = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=build/tests/%)
ASAN_BIN  = $(UNIT_SRC:tests/unit/%.c=build/tests/asan/%)
FUZZ_SRC  = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN  = $(FUZZ_SRC:tests/fuzz/%.c=build/tests/%)
ASAN_FLAGS = -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all deps run test unit e2e clean bench
all: build/tarn

$(DUCKDB_INCLUDE)/duckdb.h:
	scripts/fetch-duckdb.sh

deps:
	scripts/deps.sh

build/lib/libduckdb.so: $(DUCKDB_INCLUDE)/duckdb.h
	@mkdir -p build/lib
	cp -f $(DUCKDB_LIB)/libduckdb.so $@

build/obj/%.o: src/%.c $(DUCKDB_INCLUDE)/duckdb.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: src/%.c $(DUCKDB_INCLUDE)/duckdb.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -MMD -MP -c $< -o $@

build/tarn: $(OBJ) build/lib/libduckdb.so
	$(CC) $(CFLAGS) $(OBJ) -o $@ $(RPATH) $(LDLIBS)

build/tests/%: tests/unit/%.c tests/unit/test.h $(LIB_OBJ) build/lib/libduckdb.so
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(LIB_OBJ) -o $@ $(RPATH) $(LDLIBS)

build/tests/asan/%: tests/unit/%.c tests/unit/test.h $(ASAN_OBJ) build/lib/libduckdb.so
	@mkdir -p build/tests/asan
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -Itests/unit $< $(ASAN_OBJ) -o $@ -Wl,-rpath,'$$ORIGIN/../../lib' $(LDLIBS)

# Fuzz targets build as corpus replayers (tests/fuzz/replay.c provides main)
# that `make test` runs over tests/fuzz/corpus/. To fuzz for real with clang:
#   clang -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_json.c src/json/json.c src/common/*.c
build/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(ASAN_OBJ) build/lib/libduckdb.so
	@mkdir -p build/tests
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) $< tests/fuzz/replay.c $(ASAN_OBJ) -o $@ -Wl,-rpath,'$$ORIGIN/../lib' $(LDLIBS)

run: deps build/tarn
	build/tarn serve

unit: $(UNIT_BIN) $(ASAN_BIN) $(FUZZ_BIN)

test: deps
	$(MAKE) build/tarn unit
	tests/run.sh

bench: build/tarn
	bench/run.sh

clean:
	rm -rf build

# Only pattern rules name the sanitizer objects: without this make deletes
# them as intermediate files after each build, and rebuilds them every time.
.SECONDARY: $(ASAN_OBJ)

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d)
