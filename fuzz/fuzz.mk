# Fuzzing (docs/fuzzing.md): libFuzzer targets built with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer, in build/fuzz.
#
# The top Makefile includes it (include fuzz/fuzz.mk); it also works alone:
# make -f fuzz/fuzz.mk fuzz. Targets:
#   fuzz-build       every target in build/fuzz/bin
#   fuzz             every target FUZZ_SECONDS seconds (default 60) on a
#                    copy of its seed corpus (build/fuzz/work/NAME); fails on
#                    any crash, leak, timeout or contract violation
#   fuzz-smoke       the same, FUZZ_SMOKE_SECONDS (default 20) each: for CI
#   fuzz-NAME        one target (api idx cifar checkpoint cli), FUZZ_SECONDS
#   fuzz-deps        the Debian packages the build needs
#   fuzz-clean       removes build/fuzz only
# Variables: FUZZ_CC (clang), FUZZ_SECONDS, FUZZ_SMOKE_SECONDS, FUZZ_TARGETS,
# FUZZ_ARGS (more libFuzzer flags for every run, e.g. -jobs or -fork).
# Crash inputs are written to build/fuzz/crashes/NAME/.

# Keep the including Makefile's default goal (this file may come first).
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS       ?= api idx cifar checkpoint cli
FUZZ_ARGS          ?=
FUZZ_DIR           := build/fuzz
FUZZ_SAN           := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS        := -g -O1 $(FUZZ_SAN)
# The library as the top Makefile builds it: BASEFLAGS without its warnings,
# then its FPFLAGS, linked with its LIBS (read from the Makefile when this
# file is used alone); the CPU path only (src/cuda_stub.c stands in for CUDA).
FUZZ_TOP_VAR        = $(shell sed -n 's/^$(1) *:= *//p' Makefile 2>/dev/null)
FUZZ_LIB_FLAGS      = -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude $(or $(FPFLAGS),$(call FUZZ_TOP_VAR,FPFLAGS),-ffp-contract=off)
FUZZ_DS_LIBS        = $(or $(LIBS),$(call FUZZ_TOP_VAR,LIBS),-lfftw3f -lm -lpthread)
FUZZ_LIB_SRCS      := $(wildcard src/*.c src/cpu/*.c)
FUZZ_LIB_OBJS      := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIB           := $(FUZZ_DIR)/libdiffstride-fuzz.a
# The trainer's core (all of examples/resnet18 but main.c, the program's
# entry point), as the top Makefile's TRAINER_FLAGS build it.
FUZZ_TRAINER_DIR   := examples/resnet18
FUZZ_TRAINER_SRCS  := $(filter-out $(FUZZ_TRAINER_DIR)/main.c,$(wildcard $(FUZZ_TRAINER_DIR)/*.c))
FUZZ_TRAINER_OBJS  := $(FUZZ_TRAINER_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TRAINER       := $(FUZZ_DIR)/libtrainer-fuzz.a
FUZZ_TRAINER_FLAGS  = -std=c11 -D_GNU_SOURCE -Iinclude -I$(FUZZ_TRAINER_DIR) -fopenmp
FUZZ_LIBS           = $(FUZZ_DS_LIBS) -fopenmp -ldnnl $$(pkg-config --libs zlib) -lm
FUZZ_HEADERS       := $(wildcard include/*.h src/*.h src/cpu/*.h)
FUZZ_TRAINER_HDRS  := $(wildcard $(FUZZ_TRAINER_DIR)/*.h) include/diffstride.h
FUZZ_BINS          := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/bin/%)
FUZZ_DEPS          := clang libclang-rt-dev libomp-dev libfftw3-dev libdnnl-dev zlib1g-dev pkg-config

# libFuzzer options per target: every run stops at the first failure; the
# readers must not allocate more than their input justifies (inputs of at
# most 64 KiB, gzip'ed or not: 64 MiB is far more than any of them holds).
FUZZ_COMMON_OPTS     := -print_final_stats=1 -timeout=30 -rss_limit_mb=2048
FUZZ_OPTS_api        := -max_len=4096 -malloc_limit_mb=512
FUZZ_OPTS_idx        := -max_len=65536 -malloc_limit_mb=64
FUZZ_OPTS_cifar      := -max_len=65536 -malloc_limit_mb=64
FUZZ_OPTS_checkpoint := -max_len=65536 -malloc_limit_mb=256
FUZZ_OPTS_cli        := -max_len=1024 -malloc_limit_mb=256 -dict=fuzz/cli.dict

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-deps fuzz-clean $(FUZZ_TARGETS:%=fuzz-%)

fuzz-deps:
	@tools/deps.sh $(FUZZ_DEPS)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/src/%.o: src/%.c $(FUZZ_HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_FLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/$(FUZZ_TRAINER_DIR)/%.o: $(FUZZ_TRAINER_DIR)/%.c $(FUZZ_TRAINER_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_TRAINER_FLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_TRAINER): $(FUZZ_TRAINER_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_DIR)/bin/api: fuzz/api.c fuzz/fuzz_input.h $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_FLAGS) $(FUZZ_CFLAGS) $< -o $@ $(FUZZ_LIB) $(FUZZ_DS_LIBS)

$(FUZZ_DIR)/bin/%: fuzz/%.c fuzz/fuzz_input.h $(FUZZ_TRAINER) $(FUZZ_LIB) $(FUZZ_TRAINER_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_TRAINER_FLAGS) $(FUZZ_CFLAGS) $< -o $@ $(FUZZ_TRAINER) $(FUZZ_LIB) $(FUZZ_LIBS)

# One run: a fresh copy of the seed corpus (the committed one is never
# written), OpenMP on one thread, crash inputs kept.
define FUZZ_RUN
	@rm -rf $(FUZZ_DIR)/work/$(1) && mkdir -p $(FUZZ_DIR)/work/$(1) $(FUZZ_DIR)/crashes/$(1)
	@cp fuzz/corpus/$(1)/* $(FUZZ_DIR)/work/$(1)/
	@echo "fuzz: $(1) for $(2) s"
	OMP_NUM_THREADS=1 $(FUZZ_DIR)/bin/$(1) -max_total_time=$(2) \
	    $(FUZZ_COMMON_OPTS) $(FUZZ_OPTS_$(1)) -artifact_prefix=$(FUZZ_DIR)/crashes/$(1)/ $(FUZZ_ARGS) \
	    $(FUZZ_DIR)/work/$(1) > $(FUZZ_DIR)/$(1).log 2>&1 || \
	    { tail -n 60 $(FUZZ_DIR)/$(1).log; echo "fuzz: $(1) FAILED (log $(FUZZ_DIR)/$(1).log, input in $(FUZZ_DIR)/crashes/$(1)/)"; exit 1; }
	@echo "fuzz: $(1): $$(grep -aE '^#[0-9]+[[:space:]]+DONE' $(FUZZ_DIR)/$(1).log | tail -n 1 | sed 's/ *exec\/s.*//'),\
	    $$(ls $(FUZZ_DIR)/work/$(1) | wc -l) inputs in $(FUZZ_DIR)/work/$(1),\
	    $$(grep -aE '^stat::(number_of_executed_units|peak_rss_mb)' $(FUZZ_DIR)/$(1).log | sed 's/stat:://' | tr -s ' \n' '  ')"
endef

$(FUZZ_TARGETS:%=fuzz-%): fuzz-%: $(FUZZ_DIR)/bin/%
	$(call FUZZ_RUN,$*,$(FUZZ_SECONDS))

# Every target in turn (all built first); the smoke run is the same with
# FUZZ_SMOKE_SECONDS (a target-specific value its prerequisites inherit).
fuzz: $(FUZZ_BINS) $(FUZZ_TARGETS:%=fuzz-%)
	@echo "fuzz: $(FUZZ_TARGETS): $(FUZZ_SECONDS) s each, no finding"

fuzz-smoke: FUZZ_SECONDS = $(FUZZ_SMOKE_SECONDS)
fuzz-smoke: fuzz

fuzz-clean:
	rm -rf $(FUZZ_DIR)

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
