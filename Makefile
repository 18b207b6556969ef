# berth: build, test, install.  See README.md.
PREFIX      ?= /usr
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share/berth
MULTIARCH   := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
PLUGINDIR   ?= $(PREFIX)/lib/$(MULTIARCH)/slurm-wlm
SYSCONFDIR  ?= /etc/slurm
MANDIR      ?= $(PREFIX)/share/man
DESTDIR     ?=
BUILD       ?= build
VERSION     := 0.1.0
JOBS        ?= $(shell nproc)

CC          ?= cc
PKGS        := libarchive json-c libcurl libcrypto libsquashfs1 yaml-0.1
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    := $(shell pkg-config --libs $(PKGS))
# libcurl, libcrypto, libarchive, libsquashfs and libyaml are dlopen()ed when first
# needed (executor/base/dl/*_lazy.h): the berth command does not link them (a warm
# start uses none); the unit tests, which call them, do.
BERTH_LIBS  := $(shell pkg-config --libs json-c) -lpthread
WARN        := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CFLAGS      ?= -O2 -g
BERTH_CFLAGS = -std=gnu11 $(WARN) -fPIC \
	-DBERTH_VERSION='"$(VERSION)"' \
	-DBERTH_DEFAULT_LAUNCHER='"$(BINDIR)/berth"' \
	-DBERTH_DEFAULT_CONFIG_FILE='"$(SYSCONFDIR)/berth.conf"' \
	$(PKG_CFLAGS) $(CFLAGS)

# Every library source, found by folder (executor/README.md: one concern
# per folder).  Each is compiled once per flavour into an archive that the
# programs and the unit tests link:
#   $(BUILD)/obj    -O2, -fPIC: berth, spank_berth.so
#   $(BUILD)/asan   ASan + UBSan: the unit tests
#   $(BUILD)/vg     -O0: the unit tests under valgrind
# with header dependencies (-MMD), so `make -j$(nproc)` rebuilds only what
# a change reaches.
CONF_SRC     := $(sort $(wildcard conf/*.c))
EXECUTOR_SRC := $(sort $(wildcard executor/*.c executor/*/*.c executor/*/*/*.c))
LIB_SRC      := $(CONF_SRC) $(EXECUTOR_SRC)
CLI_SRC      := $(sort $(wildcard cli/*.c))
SPANK_SRC    := $(sort $(wildcard spank/*.c))
# The plugin stays thin: it links conf and these few helpers only and
# leaves image work to the berth command it spawns as the user.
SPANK_LIB_SRC := $(CONF_SRC) executor/base/process.c executor/cache/cachedir.c \
	executor/base/strv.c executor/base/hex.c executor/base/sha256.c executor/source/imageref.c \
	executor/runtime/caps.c executor/runtime/sing_runtime.c

INCLUDES    := -I.
DEPFLAGS     = -MMD -MP
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all clean install test test-matrix unit unit-build e2e lint demo bench soak fuzz cluster-start cluster-stop mcluster-start mcluster-stop test-multinode bench-multinode deb
all: $(BUILD)/berth $(BUILD)/spank_berth.so

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(CC) $(BERTH_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c -o $@ $<
	@echo "  CC      $<"

$(BUILD)/libberth.a: $(call obj,$(LIB_SRC))
	@rm -f $@
	@ar rcs $@ $^
	@echo "  AR      $@"

$(BUILD)/berth: $(call obj,$(CLI_SRC)) $(BUILD)/libberth.a
	$(CC) $(CFLAGS) -o $@ $^ $(BERTH_LIBS)

$(BUILD)/spank_berth.so: $(call obj,$(SPANK_SRC) $(SPANK_LIB_SRC)) spank/berth.map
	$(CC) $(CFLAGS) -shared -Wl,--version-script=spank/berth.map \
		-o $@ $(call obj,$(SPANK_SRC) $(SPANK_LIB_SRC))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(BUILD)/berth $(DESTDIR)$(BINDIR)/berth
	install -m 0755 $(BUILD)/spank_berth.so $(DESTDIR)$(PLUGINDIR)/spank_berth.so
	install -m 0644 plugstack.conf.example berth.conf.example $(DESTDIR)$(DATADIR)/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 doc/berth.1 $(DESTDIR)$(MANDIR)/man1/berth.1
	install -m 0644 doc/berth.conf.5 $(DESTDIR)$(MANDIR)/man5/berth.conf.5
	install -m 0644 doc/spank_berth.8 $(DESTDIR)$(MANDIR)/man8/spank_berth.8

# ---- tests ---------------------------------------------------------------
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS  := $(addprefix $(BUILD)/unit/,$(UNIT_TESTS)) $(addprefix $(BUILD)/unit-vg/,$(UNIT_TESTS))
ASAN_CFLAGS = -std=gnu11 $(WARN) -g -O1 $(SAN) $(PKG_CFLAGS) $(INCLUDES) $(DEPFLAGS)
VG_CFLAGS   = -std=gnu11 $(WARN) -g -O0 $(PKG_CFLAGS) $(INCLUDES) $(DEPFLAGS)

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@$(CC) $(ASAN_CFLAGS) -c -o $@ $<
	@echo "  CC asan $<"
$(BUILD)/vg/%.o: %.c
	@mkdir -p $(dir $@)
	@$(CC) $(VG_CFLAGS) -c -o $@ $<
	@echo "  CC vg   $<"
$(BUILD)/libberth-asan.a: $(patsubst %.c,$(BUILD)/asan/%.o,$(LIB_SRC))
	@rm -f $@
	@ar rcs $@ $^
$(BUILD)/libberth-vg.a: $(patsubst %.c,$(BUILD)/vg/%.o,$(LIB_SRC))
	@rm -f $@
	@ar rcs $@ $^

# A test may #include a library source to reach its static functions; the
# archive then supplies only what that file does not define.
$(BUILD)/unit/%: $(BUILD)/asan/tests/unit/%.o $(BUILD)/libberth-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) -lcmocka
$(BUILD)/unit-vg/%: $(BUILD)/vg/tests/unit/%.o $(BUILD)/libberth-vg.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(PKG_LIBS) -lcmocka

unit-build: all $(UNIT_BINS)

unit: unit-build
	BUILD=$(BUILD) BERTH_TESTS=unit bash tests/run-all.sh

e2e: all
	BUILD=$(BUILD) BERTH_TESTS=e2e bash tests/run-all.sh

lint:
	bash tests/lint.sh

# Everything: lint, unit tests (ASan/UBSan and valgrind), the end-to-end
# suite through the real cluster.  Prints "N passed, N failed" last.
# On a fresh machine too: packages first (a no-op when installed), then the
# build, then the tests (which start the cluster and dockerd if needed).
test:
	bash tests/harness/cluster/packages.sh
	$(MAKE) -j$(JOBS) unit-build
	BUILD=$(BUILD) bash tests/run-all.sh $(UNIT_TESTS)

# `make cluster-start` is the one-node cluster of `make test`;
# `make cluster-start NODES=4` (or `make mcluster-start`) the multi-node one
# of tests/multinode/ (tests/harness/cluster/multinode.sh: one slurmd per network
# namespace, in /var/tmp/berth-mcluster).
NODES ?=
cluster-start: all
ifeq ($(NODES),)
	BERTH_BUILD=$(abspath $(BUILD)) bash tests/harness/cluster/start.sh
else
	BERTH_BUILD=$(abspath $(BUILD)) BERTH_NODES=$(NODES) bash tests/harness/cluster/multinode.sh start
endif
cluster-stop:
ifeq ($(NODES),)
	bash tests/harness/cluster/stop.sh
else
	BERTH_NODES=$(NODES) bash tests/harness/cluster/multinode.sh stop
endif
mcluster-start: all
	BERTH_BUILD=$(abspath $(BUILD)) BERTH_NODES=$(or $(NODES),4) bash tests/harness/cluster/multinode.sh start
mcluster-stop:
	BERTH_NODES=$(or $(NODES),4) bash tests/harness/cluster/multinode.sh stop
# The multi-node tests alone (they start the multi-node cluster if needed).
test-multinode: all
	BUILD=$(BUILD) BERTH_TESTS=multinode bash tests/run-all.sh

# Packages first: on a fresh machine the build needs their headers.
demo:
	bash tests/harness/cluster/packages.sh
	$(MAKE) all
	BERTH_BUILD=$(abspath $(BUILD)) bash tests/demo.sh

# The version matrix (tests/harness/matrix/): unit, conformance and end-to-end
# suites per Slurm release (Debian 12 here, trixie and sid in debootstrap
# chroots, built and cached when missing) and runtime; prints the table.
# MATRIX="trixie sid" limits the rows.
test-matrix:
	bash tests/harness/cluster/packages.sh
	bash tests/harness/matrix/run.sh $(MATRIX)

bench: all
	BERTH_BUILD=$(abspath $(BUILD)) bash bench/run.sh
# Cold staging on 1, 2 and 4 nodes at once (the multi-node test cluster).
bench-multinode: all
	BERTH_BUILD=$(abspath $(BUILD)) bash bench/multinode.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

soak:
	BUILD=$(BUILD) BERTH_TESTS=soak bash tests/run-all.sh

# libFuzzer (clang) over every tests/fuzz/fuzz_*.c target: FUZZ_SECONDS=N
# each (80), two at a time; executions and exec/s per target, and the
# replay of tests/fuzz/regress/.  Prints "N passed, N failed" last.
fuzz:
	BUILD=$(BUILD) BERTH_TESTS=fuzz bash tests/run-all.sh

# Debian package (dpkg-buildpackage -b); the .deb lands in build/deb/.
deb:
	bash tests/packaging/build-deb.sh $(BUILD)/deb
