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

CC          ?= cc
PKGS        := libarchive json-c libcurl libcrypto libsquashfs1
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    := $(shell pkg-config --libs $(PKGS))
# libcurl, libcrypto, libarchive and libsquashfs are dlopen()ed when first
# needed (executor/*_lazy.h): the berth command does not link them (a warm
# start uses none); the unit tests, which call them, do.
BERTH_LIBS  := $(shell pkg-config --libs json-c) -lpthread
WARN        := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CFLAGS      ?= -O2 -g
BERTH_CFLAGS = -std=gnu11 $(WARN) -fPIC \
	-DBERTH_VERSION='"$(VERSION)"' \
	-DBERTH_DEFAULT_LAUNCHER='"$(BINDIR)/berth"' \
	-DBERTH_DEFAULT_CONFIG_FILE='"$(SYSCONFDIR)/berth.conf"' \
	$(PKG_CFLAGS) $(CFLAGS)

CONF_SRC     := conf/error.c conf/config.c conf/mounts.c conf/names.c
EXECUTOR_SRC := executor/process.c executor/tarmember.c executor/image.c \
	executor/flatten.c executor/cache.c executor/cachedir.c executor/fs.c executor/executor.c executor/charliecloud.c executor/mountns.c executor/fakeroot.c executor/caps.c executor/named.c executor/save.c executor/bindstage.c executor/singularity.c \
	executor/fetch.c executor/uhttp.c executor/docker_api.c executor/docker.c executor/strv.c \
	executor/sha256.c executor/xxh64.c executor/lazy.c executor/curl_lazy.c executor/crypto_lazy.c executor/archive_lazy.c executor/squashfs_lazy.c executor/squashfs.c executor/sif.c executor/sing_meta.c \
	executor/imageref.c executor/registry.c executor/blobs.c executor/manifest.c executor/docker_sweep.c
LIB_SRC      := $(CONF_SRC) $(EXECUTOR_SRC)
CLI_SRC      := cli/main.c cli/launch.c cli/run.c cli/docker.c cli/registry.c cli/containers.c
SPANK_SRC    := spank/plugin.c spank/options.c spank/remote.c spank/pin.c
# The plugin stays thin: it links conf and the process helper only and
# leaves image work to the berth command it spawns as the user.
SPANK_LIB_SRC := conf/error.c conf/config.c conf/mounts.c conf/names.c executor/process.c executor/cachedir.c executor/strv.c executor/imageref.c executor/caps.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

.PHONY: all clean install test test-matrix unit e2e lint demo bench soak fuzz cluster-start cluster-stop mcluster-start mcluster-stop test-multinode bench-multinode deb
all: $(BUILD)/berth $(BUILD)/spank_berth.so

$(BUILD)/%.o: %.c $(wildcard conf/*.h executor/*.h spank/*.h cli/*.h)
	@mkdir -p $(dir $@)
	@$(CC) $(BERTH_CFLAGS) -c -o $@ $<
	@echo "  CC      $<"

$(BUILD)/berth: $(call obj,$(CLI_SRC) $(LIB_SRC))
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

$(BUILD)/unit/%: tests/unit/%.c $(LIB_SRC) $(wildcard conf/*.h executor/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -g -O1 $(SAN) $(PKG_CFLAGS) -Iconf -Iexecutor \
		-o $@ $< $(LIB_SRC) $(PKG_LIBS) -lcmocka
$(BUILD)/unit-vg/%: tests/unit/%.c $(LIB_SRC) $(wildcard conf/*.h executor/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -g -O0 $(PKG_CFLAGS) -Iconf -Iexecutor \
		-o $@ $< $(LIB_SRC) $(PKG_LIBS) -lcmocka

unit: $(addprefix $(BUILD)/unit/,$(UNIT_TESTS)) $(addprefix $(BUILD)/unit-vg/,$(UNIT_TESTS)) all
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
	bash tests/cluster/packages.sh
	$(MAKE) all $(addprefix $(BUILD)/unit/,$(UNIT_TESTS)) $(addprefix $(BUILD)/unit-vg/,$(UNIT_TESTS))
	BUILD=$(BUILD) bash tests/run-all.sh $(UNIT_TESTS)

# `make cluster-start` is the one-node cluster of `make test`;
# `make cluster-start NODES=4` (or `make mcluster-start`) the multi-node one
# of tests/multinode/ (tests/cluster/multinode.sh: one slurmd per network
# namespace, in /var/tmp/berth-mcluster).
NODES ?=
cluster-start: all
ifeq ($(NODES),)
	BERTH_BUILD=$(abspath $(BUILD)) bash tests/cluster/start.sh
else
	BERTH_BUILD=$(abspath $(BUILD)) BERTH_NODES=$(NODES) bash tests/cluster/multinode.sh start
endif
cluster-stop:
ifeq ($(NODES),)
	bash tests/cluster/stop.sh
else
	BERTH_NODES=$(NODES) bash tests/cluster/multinode.sh stop
endif
mcluster-start: all
	BERTH_BUILD=$(abspath $(BUILD)) BERTH_NODES=$(or $(NODES),4) bash tests/cluster/multinode.sh start
mcluster-stop:
	BERTH_NODES=$(or $(NODES),4) bash tests/cluster/multinode.sh stop
# The multi-node tests alone (they start the multi-node cluster if needed).
test-multinode: all
	BUILD=$(BUILD) BERTH_TESTS=multinode bash tests/run-all.sh

# Packages first: on a fresh machine the build needs their headers.
demo:
	bash tests/cluster/packages.sh
	$(MAKE) all
	BERTH_BUILD=$(abspath $(BUILD)) bash tests/demo.sh

# The version matrix (tests/matrix/): unit, conformance and end-to-end
# suites per Slurm release (Debian 12 here, trixie and sid in debootstrap
# chroots, built and cached when missing) and runtime; prints the table.
# MATRIX="trixie sid" limits the rows.
test-matrix:
	bash tests/cluster/packages.sh
	bash tests/matrix/run.sh $(MATRIX)

bench: all
	BERTH_BUILD=$(abspath $(BUILD)) bash bench/run.sh
# Cold staging on 1, 2 and 4 nodes at once (the multi-node test cluster).
bench-multinode: all
	BERTH_BUILD=$(abspath $(BUILD)) bash bench/multinode.sh

clean:
	rm -rf $(BUILD)

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
