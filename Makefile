# checkout saga orchestrator
#
#   make            build bin/checkoutd, bin/mock-stripe, bin/mock-notify
#   make run        install what is missing, start Postgres + mocks, run the server
#   make test       install what is missing, build with ASan+UBSan, run every suite
#   make test-pgbouncer  every suite through pgbouncer in transaction pooling mode
#   make bench      throughput against the bare SQL baseline (prints a table)
#   make chaos      the long crash/fault run (a short smoke of it is in make test)
#   make fuzz       the libFuzzer targets of fuzz/, FUZZ_SECONDS (60) each
#   make fuzz-build build them only (build/fuzz/fuzz/fuzz_*)
#
# Three build flavours share one rule set: the release build in build/rel (binaries
# copied to bin/), the sanitizer build in build/san that the tests use, and the
# fuzzing build in build/fuzz (FUZZ=1: clang, libFuzzer's coverage, ASan + UBSan).

PKGS    := libpq libcurl jansson uuid libmicrohttpd libcrypto
CC      ?= cc
SAN     ?= 0
FUZZ    ?= 0
# Debian 12's clang-14 (scripts/deps.sh); any clang with libFuzzer will do.
FUZZ_CC ?= $(shell command -v clang-14 >/dev/null 2>&1 && echo clang-14 || echo clang)
ifeq ($(FUZZ),1)
CC      := $(FUZZ_CC)
BUILD   := build/fuzz
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link \
           -fno-sanitize-recover=undefined
else ifeq ($(SAN),1)
BUILD   := build/san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD   := build/rel
OPT     := -O2 -g
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -pthread \
           -D_GNU_SOURCE $(PKG_CFLAGS) $(OPT) -MMD -MP
# Which headers a file may include. The saga (states/) sees its own headers and
# logging only: an include of anything else in src/ fails to compile there.
INCLUDES := -Isrc -Isrc/log -Istates -Iwebhooks
$(BUILD)/states/%.o: INCLUDES := -Istates -Isrc/log
$(BUILD)/tests/unit/%.o: INCLUDES += -Itests
LDFLAGS += -pthread $(OPT)
LDLIBS  += $(PKG_LIBS) -lm

# Everything in src/, states/ and webhooks/ except the server's main() is the
# core library that the server, the mocks and the tests link.
CORE_SRCS := $(filter-out src/main.c,$(wildcard src/*.c src/log/*.c states/*.c webhooks/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/sql_embed.o $(BUILD)/gen/web_embed.o
SQL_FILES := $(sort $(wildcard sql/[0-9]*.sql))
# The web pages (web/admin/: checkoutd's /admin; web/shop/: mock-shop's storefront),
# compiled in like the migrations.
WEB_FILES := $(sort $(wildcard web/*/*))
CORE_LIB  := $(BUILD)/libco.a

# Each folder of mocks/ but common/ is one mock (mocks/stripe/ -> bin/mock-stripe), built
# from its .c files plus those of mocks/common/ (MOCK_COMMON).
MOCK_NAMES  := $(filter-out common,$(patsubst mocks/%/,%,$(wildcard mocks/*/)))
MOCK_SRCS   := $(wildcard $(MOCK_NAMES:%=mocks/%/*.c))
MOCK_BINS   := $(MOCK_NAMES:%=$(BUILD)/bin/mock-%)
MOCK_COMMON := $(patsubst %.c,$(BUILD)/%.o,$(wildcard mocks/common/*.c))
mock_objs    = $(patsubst %.c,$(BUILD)/%.o,$(filter mocks/$(1)/%,$(MOCK_SRCS)))

TEST_SRCS := $(wildcard tests/test_*.c)
# The unit layer mirrors the source tree: tests/unit/states/test_events.c tests
# states/events.c. Same runner and fixtures as the suites above.
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS) $(UNIT_SRCS))
TEST_COMMON := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(TEST_SRCS),$(wildcard tests/*.c)))

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

BINS := $(BUILD)/bin/checkoutd $(MOCK_BINS)

# fuzz/fuzz_NAME.c is one libFuzzer target, build/fuzz/fuzz/fuzz_NAME, linked
# against the core library of this flavour (FUZZ=1 only: make fuzz-build).
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst %.c,$(BUILD)/%,$(FUZZ_SRCS))

.PHONY: all build deps run test test-pgbouncer bench chaos clean tests-build fuzz fuzz-build fuzz-bins
# Keep object files make would otherwise delete as intermediates (mock_*.o, test_*.o).
.SECONDARY:
all: deps
	@$(MAKE) --no-print-directory build
	@mkdir -p bin && cp -f $(BINS) bin/

build: $(BINS) $(TEST_BINS) $(BENCH_BINS)

tests-build: $(BINS) $(TEST_BINS)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(BUILD)/gen/sql_embed.c: $(SQL_FILES) scripts/embed_sql.sh
	@mkdir -p $(dir $@)
	scripts/embed_sql.sh $@ $(SQL_FILES)

$(BUILD)/gen/web_embed.c: $(WEB_FILES) scripts/embed_web.sh
	@mkdir -p $(dir $@)
	scripts/embed_web.sh $@ $(WEB_FILES)

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@echo "  CC $<"; $(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/checkoutd: $(BUILD)/src/main.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The mock's own objects are known only once the stem is: hence the second expansion.
.SECONDEXPANSION:
$(BUILD)/bin/mock-%: $$(call mock_objs,$$*) $(MOCK_COMMON) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# Checks first (a live run, the port), then builds only what it runs.
run: deps
	@scripts/run.sh check
	@$(MAKE) --no-print-directory $(BINS)
	@mkdir -p bin && cp -f $(BINS) bin/
	@scripts/run.sh

test: deps
	@$(MAKE) --no-print-directory SAN=1 tests-build
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
	@$(MAKE) --no-print-directory all
	@scripts/test.sh

bench: all
	@$(MAKE) --no-print-directory build
	@scripts/bench.sh

# Every suite again, with every connection through pgbouncer (transaction pooling).
test-pgbouncer: deps
	@$(MAKE) --no-print-directory SAN=1 tests-build
	@PGBOUNCER=1 scripts/test.sh

chaos: deps
	@$(MAKE) --no-print-directory SAN=1 tests-build
	@CHAOS_LONG=1 scripts/test.sh chaos

# ---------------------------------------------------------------- fuzzing
# The targets and their seeds are in fuzz/ (fuzz/README.md); fuzz/run.sh runs
# them: "smoke" (a few seconds each, the suite "fuzz" of make test) or "long".
fuzz-build: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins

fuzz: fuzz-build
	@fuzz/run.sh long

fuzz-bins: $(FUZZ_BINS)

# clang's -Wformat=2 also flags a va_list format passed on without a format
# attribute, which gcc does not: co_http.c's libmicrohttpd logger and the mock's
# vformat_msg have none (adding __attribute__((format(printf, N, 0))) to them
# would let these two exceptions go).
ifeq ($(FUZZ),1)
$(BUILD)/src/co_http.o $(BUILD)/mocks/stripe/render.o: CFLAGS += -Wno-format-nonliteral
endif

# Objects first, then the library (a target may add objects that use it).
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/fuzz_%.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $(filter %.o,$^) $(CORE_LIB) -o $@ $(LDLIBS)

# The mock's form codec: fuzz_form.c includes form.c; the rest of the mock
# (its main() aside) links as it is.
$(BUILD)/fuzz/fuzz_form: $(filter-out %/main.o %/form.o,$(call mock_objs,stripe)) $(MOCK_COMMON)

clean:
	rm -rf build bin

-include $(CORE_OBJS:.o=.d) $(wildcard $(BUILD)/*/*.d $(BUILD)/*/*/*.d $(BUILD)/*/*/*/*.d)
