# libdiffstride. Targets: all check valgrind check-gpu demo bench bench-gpu
# install uninstall clean, and fuzz fuzz-smoke (fuzz/fuzz.mk). Variables: PREFIX LIBDIR INCLUDEDIR DESTDIR CC CFLAGS,
# SANITIZE=1 (ASan+UBSan build of the tests), TSAN=1 (ThreadSanitizer build
# of the threading suite), CUDA=0 (leave the CUDA path
# out), GOLDEN (more directories of test vectors, beside tests/vectors),
# PYTHON (the interpreter of the Python tests), THREADS and BENCH_ARGS
# (make bench). The Python package is installed by pip: pip install .
# (pyproject.toml, setup.py).

VERSION    := $(shell tools/version.sh)
SOVERSION  := 0
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
# The tests read the repository's vectors and those of every directory in GOLDEN.
GOLDEN     ?=
VECTOR_DIRS = tests/vectors $(GOLDEN)
CFLAGS     ?= -O3 -g
SANITIZE   ?= 0
TSAN       ?= 0
PYTHON     ?= python3

# Debian packages: the library needs FFTW; the tests need Check and Python
# (pip and venv for the wheel test), and numpy in the PYTHON they run with
# (tools/pydeps.sh).
LIB_DEPS   := libfftw3-dev
TEST_DEPS  := check pkg-config python3 python3-numpy python3-pip python3-venv g++
PY_DEPS    := numpy
WARNINGS   := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion \
              -Wstrict-prototypes -Wmissing-prototypes
BASEFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude $(WARNINGS)
# After CFLAGS, so that no CFLAGS undoes it: the geometry's float32
# decisions are never fused into FMAs (docs/algorithm.md, "Discrete
# decisions in float32"; tests/test_elementwise.c checks it).
FPFLAGS    := -ffp-contract=off
LIBS       := -lfftw3f_threads -lfftw3f -lm -lpthread

# The libraries in lib/ are always the release build. SANITIZE=1 builds the
# test binaries (and a private copy of the library they link) with ASan and
# UBSan in build/sanitize; TSAN=1 with ThreadSanitizer in build/tsan, where
# make check runs the threading suite.
ifeq ($(SANITIZE),1)
BUILD      := build/sanitize
SANFLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(TSAN),1)
BUILD      := build/tsan
SANFLAGS   := -fsanitize=thread -fno-omit-frame-pointer
else
BUILD      := build/release
SANFLAGS   :=
endif
INSTRUMENTED := $(if $(SANFLAGS),1,0)

# CUDA: built in when nvcc is found and src/cuda has sources, unless CUDA=0.
NVCC       ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_SRCS  := $(wildcard src/cuda/*.cu)
ifeq ($(CUDA),0)
WITH_CUDA  := 0
else ifneq ($(and $(NVCC),$(CUDA_SRCS)),)
WITH_CUDA  := 1
else
WITH_CUDA  := 0
endif

# With CUDA the library links cuFFT and the CUDA runtime (and libstdc++ for
# nvcc's host code); the sanitizer build of the tests leaves CUDA out (the
# CUDA runtime and ASan do not share an address space well).
C_SRCS     := $(wildcard src/*.c) $(wildcard src/cpu/*.c)
ifeq ($(WITH_CUDA),1)
CUDA_HOME  := $(patsubst %/bin/,%,$(dir $(NVCC)))
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcufft -lcudart -lstdc++
NVCCFLAGS  ?= -O3 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
LIB_OBJS   := $(filter-out build/release/src/cuda_stub.o,$(C_SRCS:%.c=build/release/%.o)) \
              $(CUDA_SRCS:%.cu=build/release/%.o)
else
CUDA_LIBS  :=
LIB_OBJS   := $(C_SRCS:%.c=build/release/%.o)
endif
ALL_LIBS   := $(LIBS) $(CUDA_LIBS)
ifeq ($(INSTRUMENTED),1)
TEST_LIB_OBJS := $(C_SRCS:%.c=$(BUILD)/%.o)
TEST_LIBS  := $(LIBS)
else
TEST_LIB_OBJS := $(LIB_OBJS)
TEST_LIBS  := $(ALL_LIBS)
endif
TEST_SRCS  := $(wildcard tests/*.c)
TEST_OBJS  := $(TEST_SRCS:%.c=$(BUILD)/%.o)
SHARED     := lib/libdiffstride.so.$(VERSION)
STATIC     := lib/libdiffstride.a
TEST_BIN   := $(BUILD)/tests/test_diffstride
CXXFLAGS   ?= -O3 -g
CXXBASE    := -std=c++17 -Iinclude -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror
CPP_TEST   := $(BUILD)/tests/cpp_wrapper_test
# The GPU suite: built with the CUDA path (not in the sanitizer builds); it
# reports itself skipped where no CUDA device is usable.
ifeq ($(WITH_CUDA)$(INSTRUMENTED),10)
GPU_TEST   := $(BUILD)/tests/test_gpu
CUDA_INC   := -I$(CUDA_HOME)/include
endif

# The ResNet-18 trainer (examples/resnet18): its core (all but main.c) is
# shared with its Check suite. It links libdiffstride through the public
# header only, oneDNN for the convolutions, batch norm and GEMMs, and zlib
# for the gzip'ed IDX files.
TRAINER_DEPS := libdnnl-dev zlib1g-dev
TRAINER_DIR  := examples/resnet18
TRAINER_CORE := $(filter-out $(TRAINER_DIR)/main.c,$(wildcard $(TRAINER_DIR)/*.c))
TRAINER_OBJS := $(TRAINER_CORE:%.c=$(BUILD)/%.o)
TRAINER_FLAGS = -std=c11 -D_GNU_SOURCE -Iinclude -Wall -Wextra -Wpedantic -Wshadow \
                -Wstrict-prototypes -Wmissing-prototypes -fopenmp $(TRAINER_MPI_FLAGS)
TRAINER_LIBS  = -fopenmp -ldnnl $$(pkg-config --libs zlib) $(TRAINER_MPI_LIBS) -lm
TRAINER      := build/resnet18
TRAINER_TEST := $(BUILD)/tests/test_trainer
# Compares two checkpoints within a tolerance (the MPI tests: K ranks
# against one process).
CKPT_COMPARE := build/release/tests/ckpt_compare

# MPI (Open MPI: Debian's libopenmpi-dev, openmpi-bin): the trainer's data
# parallelism under mpirun (dist.c). Asked of pkg-config when the trainer
# compiles, after trainer-deps installed it; with MPI=0, or where pkg-config
# has no ompi-c, the trainer is built for one process.
ifneq ($(MPI),0)
TRAINER_DEPS      += libopenmpi-dev openmpi-bin
TEST_DEPS         += iproute2 # ip netns: two ranks as two hosts (mpi_netns_test.sh)
TRAINER_MPI_FLAGS  = $$(pkg-config --exists ompi-c && echo -DRN_WITH_MPI $$(pkg-config --cflags ompi-c))
TRAINER_MPI_LIBS   = $$(pkg-config --exists ompi-c && pkg-config --libs ompi-c)
endif

# The trainer's CUDA backend (cuDNN, cuBLAS, libdiffstride's CUDA path): built
# with the CUDA path when cuDNN's header is found beside nvcc's.
ifeq ($(WITH_CUDA),1)
ifneq ($(wildcard $(CUDA_HOME)/include/cudnn.h),)
TRAINER_CUDA     := build/release/$(TRAINER_DIR)/cuda_ops.o
TRAINER_CUDA_DEF := -DRN_WITH_CUDA
TRAINER_CUDA_LIB := -lcudnn -lcublas
# NCCL (with the CUDA toolkit): the gradients of several ranks on GPUs.
ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h),)
TRAINER_NCCL     := -DRN_WITH_NCCL
TRAINER_CUDA_LIB += -lnccl
endif
ifneq ($(INSTRUMENTED),1)
TRAINER_GPU_TEST := build/release/tests/test_trainer_gpu
endif
endif
endif

.PHONY: all lib-deps test-deps trainer-deps trainer check valgrind check-gpu demo examples bench bench-gpu bench-conv bench-dist \
        install uninstall clean
all: lib-deps $(SHARED) $(STATIC) lib/diffstride.pc
	@echo "libdiffstride $(VERSION): CPU path (FFTW3)$(if $(filter 1,$(WITH_CUDA)), + CUDA path ($(NVCC)),); nvcc: $(if $(NVCC),$(NVCC),not found)$(if $(filter 0,$(WITH_CUDA)),; CUDA path not built,)"

lib-deps:
	@tools/deps.sh $(LIB_DEPS)

test-deps:
	@tools/deps.sh $(TEST_DEPS)
	@tools/pydeps.sh $(PYTHON) $(PY_DEPS)

HEADERS    := $(wildcard include/*.h src/*.h src/cpu/*.h src/cuda/*.h)
# Switching CUDA on or off changes what the libraries hold: this stamp,
# newer after a switch, makes them relink.
CONFIG     := build/release/with-cuda-$(WITH_CUDA)
$(CONFIG):
	@mkdir -p build/release && rm -f build/release/with-cuda-* && touch $@
build/release/src/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -fPIC -fvisibility=hidden $(CFLAGS) $(FPFLAGS) -c $< -o $@

build/release/src/cuda/%.o: src/cuda/%.cu $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -Iinclude -Xcompiler -fPIC,-fvisibility=hidden,-ffp-contract=off,-Wall,-Wextra $(NVCCFLAGS) -c $< -o $@

ifeq ($(INSTRUMENTED),1)
$(BUILD)/src/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -fPIC -fvisibility=hidden $(SANFLAGS) $(CFLAGS) $(FPFLAGS) -c $< -o $@
endif

$(SHARED): $(LIB_OBJS) $(CONFIG)
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,libdiffstride.so.$(SOVERSION) $(CFLAGS) -o $@ $(LIB_OBJS) $(ALL_LIBS)
	ln -sf libdiffstride.so.$(VERSION) lib/libdiffstride.so.$(SOVERSION)
	ln -sf libdiffstride.so.$(SOVERSION) lib/libdiffstride.so

$(STATIC): $(LIB_OBJS) $(CONFIG)
	@mkdir -p lib
	rm -f $@ && $(AR) rcs $@ $(LIB_OBJS)

# The .pc file names the install directories: made again by `install`.
PC_SED     = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
                 -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|-lfftw3f_threads -lm -lpthread $(CUDA_LIBS)|'
lib/diffstride.pc: pkgconfig/diffstride.pc.in Makefile
	@mkdir -p lib
	$(PC_SED) $< > $@

$(BUILD)/libdiffstride-test.a: $(TEST_LIB_OBJS) $(CONFIG)
	rm -f $@ && $(AR) rcs $@ $(TEST_LIB_OBJS)

$(TEST_BIN): $(TEST_OBJS) $(BUILD)/libdiffstride-test.a
	$(CC) $(SANFLAGS) $(CFLAGS) -o $@ $^ $$(pkg-config --libs check) $(TEST_LIBS)

$(BUILD)/tests/%.o: tests/%.c $(wildcard tests/*.h include/*.h src/*.h src/cpu/*.h) | test-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -Isrc $(CUDA_INC) $(SANFLAGS) $(CFLAGS) $(FPFLAGS) $$(pkg-config --cflags check) -c $< -o $@

$(CPP_TEST): tests/cpp_wrapper_test.cpp include/diffstride.hpp include/diffstride.h $(BUILD)/libdiffstride-test.a | test-deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXBASE) $(SANFLAGS) $(CXXFLAGS) $< -o $@ $(BUILD)/libdiffstride-test.a $(TEST_LIBS)

$(GPU_TEST): $(BUILD)/tests/gpu/test_gpu.o $(BUILD)/tests/golden.o $(BUILD)/tests/util.o $(BUILD)/libdiffstride-test.a
	$(CC) $(CFLAGS) -o $@ $^ $$(pkg-config --libs check) $(TEST_LIBS)

# TSAN=1: the threading suite (contexts used from many threads, the library's
# threads, FFTW's planner shared with a host thread) under ThreadSanitizer.
ifeq ($(TSAN),1)
check: all test-deps $(TEST_BIN)
	CK_RUN_SUITE=threading TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" $(TEST_BIN)
else
check: all test-deps $(TEST_BIN) $(CPP_TEST) $(GPU_TEST) $(TRAINER_TEST) $(TRAINER) $(CKPT_COMPARE) $(TRAINER_GPU_TEST)
	DS_VECTOR_DIRS="$(VECTOR_DIRS)" $(TEST_BIN)
	$(TRAINER_TEST)
	tests/trainer/cli_test.sh $(TRAINER)
	tests/trainer/mpi_test.sh $(TRAINER) $(CKPT_COMPARE)
	$(CPP_TEST) $(VECTOR_DIRS)
	$(if $(GPU_TEST),DS_VECTOR_DIRS="$(VECTOR_DIRS)" $(GPU_TEST),@echo "gpu: GPU suite not built (no CUDA path in this build)")
	$(if $(TRAINER_GPU_TEST),$(TRAINER_GPU_TEST),@echo "trainer_gpu: not built (no CUDA backend in this build)")
	$(PYTHON) tools/make_vectors.py --check tests/vectors
	$(PYTHON) tools/make_vectors.py --check-geometry tests/vectors/geometry.txt
	$(PYTHON) tests/ffi_test.py $(SHARED) $(VECTOR_DIRS)
	DIFFSTRIDE_LIB=$(SHARED) DS_VECTOR_DIRS="$(VECTOR_DIRS)" $(PYTHON) -m unittest discover -s bindings/python/tests -t bindings/python
	tests/check_exports.sh $(SHARED)
	tests/install_test.sh
	tests/wheel_test.sh $(PYTHON)
endif

# The Check suite under valgrind, in one process (CK_FORK=no): no errors,
# no leaks (FFTW's planner keeps some memory "still reachable" at exit).
valgrind: all test-deps $(TEST_BIN)
	@command -v valgrind >/dev/null || tools/deps.sh valgrind
	DS_VECTOR_DIRS="$(VECTOR_DIRS)" CK_FORK=no valgrind --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect,possible $(TEST_BIN)

check-gpu: all test-deps $(GPU_TEST) $(TRAINER_GPU_TEST)
	$(if $(GPU_TEST),DS_REQUIRE_GPU=1 DS_VECTOR_DIRS="$(VECTOR_DIRS)" $(GPU_TEST),@echo "check-gpu: no CUDA path in this build (nvcc not found, CUDA=0, SANITIZE=1 or TSAN=1)"; exit 1)
	$(if $(TRAINER_GPU_TEST),DS_REQUIRE_GPU=1 $(TRAINER_GPU_TEST),@echo "check-gpu: no trainer CUDA backend in this build (cuDNN not found)"; exit 1)

trainer-deps:
	@tools/deps.sh $(TRAINER_DEPS)

# The trainer program is always the release build; SANITIZE=1 builds its
# core again (build/sanitize) for the trainer's test suite.
build/release/$(TRAINER_DIR)/%.o: $(TRAINER_DIR)/%.c $(wildcard $(TRAINER_DIR)/*.h) include/diffstride.h $(CONFIG) | trainer-deps
	@mkdir -p $(dir $@)
	$(CC) $(TRAINER_FLAGS) $(TRAINER_CUDA_DEF) $(CFLAGS) -c $< -o $@

build/release/$(TRAINER_DIR)/cuda_ops.o: $(TRAINER_DIR)/cuda_ops.cu $(wildcard $(TRAINER_DIR)/*.h) include/diffstride.h
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -Iinclude -DRN_WITH_CUDA $(TRAINER_NCCL) -Xcompiler -Wall,-Wextra $(NVCCFLAGS) -c $< -o $@

build/sanitize/$(TRAINER_DIR)/%.o: $(TRAINER_DIR)/%.c $(wildcard $(TRAINER_DIR)/*.h) include/diffstride.h | trainer-deps
	@mkdir -p $(dir $@)
	$(CC) $(TRAINER_FLAGS) $(SANFLAGS) $(CFLAGS) -c $< -o $@

$(TRAINER): $(TRAINER_CORE:%.c=build/release/%.o) build/release/$(TRAINER_DIR)/main.o $(TRAINER_CUDA) $(STATIC)
	$(CC) $(CFLAGS) -o $@ $^ $(ALL_LIBS) $(TRAINER_CUDA_LIB) $(TRAINER_LIBS)
	@echo "resnet18: CPU backend$(if $(TRAINER_CUDA), + CUDA backend (cuDNN, cuBLAS$(if $(TRAINER_NCCL), and NCCL)),; no CUDA backend (needs nvcc and cuDNN))"
	@echo "resnet18: $(if $(filter 0,$(MPI)),built without MPI (MPI=0): one process,$$(pkg-config --exists ompi-c && echo "MPI $$(pkg-config --modversion ompi-c) (mpirun -np K)" || echo "no MPI found (pkg-config ompi-c): one process")")

trainer: all $(TRAINER)

# The trainer's GPU suite: one step on the GPU against one on the CPU.
$(TRAINER_GPU_TEST): tests/gpu/test_trainer_gpu.c $(TRAINER_CORE:%.c=build/release/%.o) $(TRAINER_CUDA) \
                     $(STATIC) | test-deps
	$(CC) $(TRAINER_FLAGS) -I$(TRAINER_DIR) $(TRAINER_CUDA_DEF) $(CFLAGS) $$(pkg-config --cflags check) -o $@ $^ \
	    $$(pkg-config --libs check) $(ALL_LIBS) $(TRAINER_CUDA_LIB) $(TRAINER_LIBS)

$(CKPT_COMPARE): tests/trainer/ckpt_compare.c $(TRAINER_CORE:%.c=build/release/%.o) $(TRAINER_CUDA) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TRAINER_FLAGS) -I$(TRAINER_DIR) $(CFLAGS) -o $@ $^ $(ALL_LIBS) $(TRAINER_CUDA_LIB) $(TRAINER_LIBS)

$(TRAINER_TEST): tests/trainer/test_trainer.c tests/trainer/test_ops.c tests/trainer/test_dist.c $(TRAINER_OBJS) $(BUILD)/libdiffstride-test.a | test-deps
	$(CC) $(TRAINER_FLAGS) -I$(TRAINER_DIR) $(SANFLAGS) $(CFLAGS) $$(pkg-config --cflags check) -o $@ $^ \
	    $$(pkg-config --libs check) $(TEST_LIBS) $(TRAINER_LIBS)

# The README's main job: ResNet-18 with DiffStride learns its strides on
# Fashion-MNIST (Debian's dataset-fashion-mnist, installed when missing);
# DEMO_ARGS adds or overrides trainer flags.
DEMO_FLAGS := --mode diffstride --width 0.125 --epochs 3 --train-subset 40000 \
              --lr 0.02,30:0.1,600:0.02,850:0.004 --weight-decay 5e-5 --pad 0 --no-flip \
              --label-smoothing 0 \
              --out runs/demo
demo: all trainer
	@tools/deps.sh dataset-fashion-mnist gnuplot-nox
	./$(TRAINER) $(DEMO_FLAGS) $(DEMO_ARGS)

# The small examples: a stride learned through the C API, the C++ wrapper.
examples: all
	@mkdir -p build
	$(CC) $(BASEFLAGS) $(CFLAGS) examples/learn_stride.c -o build/learn_stride $(STATIC) $(ALL_LIBS)
	./build/learn_stride
	$(CXX) $(CXXBASE) $(CXXFLAGS) examples/cpp_example.cpp -o build/cpp_example $(STATIC) $(ALL_LIBS)
	./build/cpp_example

# THREADS: for both the library and PyTorch (default 2); BENCH_ARGS: more
# options of bench/compare.py (--reps, --shapes). With the CUDA path,
# build/bench also has --device cuda (bench/README.md).
THREADS    ?= 2
ifeq ($(WITH_CUDA),1)
BENCH_CUDA := -DDS_BENCH_CUDA -I$(CUDA_HOME)/include
endif
build/bench: bench/bench.c $(STATIC)
	@mkdir -p build
	$(CC) $(BASEFLAGS) $(CFLAGS) $(BENCH_CUDA) bench/bench.c -o $@ $(STATIC) $(ALL_LIBS)

bench: all build/bench
	$(PYTHON) bench/compare.py --bench build/bench --threads $(THREADS) $(BENCH_ARGS)

# The trainer's convolution choices (docs/benchmarks.md, "Convolution
# algorithms and layouts"): oneDNN direct against Winograd, NHWC against
# blocked, for the layer shapes of the table; THREADS as above.
CONV_CASES := "64 32 32" "128 16 16" "256 22 22" "512 20 20" "64 20 20" "32 22 22" "16 24 24" "8 28 28"
build/conv_bench: bench/conv_bench.c | trainer-deps
	@mkdir -p build
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra $(CFLAGS) $< -o $@ -ldnnl

bench-conv: build/conv_bench
	@for k in $(CONV_CASES); do for a in "direct nhwc" "direct blocked" "winograd blocked"; do \
	    OMP_NUM_THREADS=$(THREADS) build/conv_bench $$k 128 1 $$a 5 | tail -n 1 || true; done; done

# Data-parallel training (docs/benchmarks.md, "Data-parallel training"):
# 1 rank of THREADS threads against THREADS ranks of 1, the all-reduce over
# shared memory and TCP, and the model of N machines.
bench-dist: $(TRAINER)
	$(PYTHON) bench/dist_bench.py --trainer $(TRAINER) --threads $(THREADS) $(BENCH_ARGS)

# The GPU benchmark: the library against PyTorch on CUDA, bandwidth against
# the copy bandwidth measured in the same run, peak extra device memory.
bench-gpu: all build/bench
	$(if $(BENCH_CUDA),,@echo "bench-gpu: no CUDA path in this build (nvcc not found or CUDA=0)"; exit 1)
	$(PYTHON) bench/compare.py --device cuda --bench build/bench $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/diffstride.h include/diffstride.hpp $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libdiffstride.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdiffstride.so.$(SOVERSION)
	ln -sf libdiffstride.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libdiffstride.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(PC_SED) pkgconfig/diffstride.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/diffstride.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/diffstride.h $(DESTDIR)$(INCLUDEDIR)/diffstride.hpp \
	      $(DESTDIR)$(LIBDIR)/libdiffstride.a \
	      $(DESTDIR)$(LIBDIR)/libdiffstride.so $(DESTDIR)$(LIBDIR)/libdiffstride.so.$(SOVERSION) \
	      $(DESTDIR)$(LIBDIR)/libdiffstride.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/diffstride.pc

clean:
	rm -rf build lib

# libFuzzer targets (docs/fuzzing.md): make fuzz FUZZ_SECONDS=N, make fuzz-smoke.
include fuzz/fuzz.mk
