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
# libcurl is dlopen()ed when first needed (executor/curl_lazy.h): the
# berth command does not link it; the unit tests, which call it, do.
BERTH_LIBS  := $(shell pkg-config --libs json-c libsquashfs1)
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
	executor/fetch.c executor/docker_api.c executor/docker.c executor/strv.c \
	executor/lazy.c executor/curl_lazy.c executor/crypto_lazy.c executor/archive_lazy.c executor/squashfs.c executor/sif.c executor/sing_meta.c \
	executor/imageref.c executor/registry.c executor/blobs.c executor/manifest.c executor/docker_sweep.c
LIB_SRC      := $(CONF_SRC) $(EXECUTOR_SRC)
CLI_SRC      := cli/main.c cli/launch.c cli/run.c cli/docker.c cli/registry.c cli/containers.c
SPANK_SRC    := spank/plugin.c spank/options.c spank/remote.c spank/pin.c
# The plugin stays thin: it links conf and the process helper only and
# leaves image work to the berth command it spawns as the user.
SPANK_LIB_SRC := conf/error.c conf/config.c conf/mounts.c conf/names.c executor/process.c executor/cachedir.c executor/strv.c executor/imageref.c executor/caps.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

.PHONY: all clean install test test-matrix unit e2e lint demo bench soak fuzz cluster-start cluster-stop deb
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

cluster-start: all
	BERTH_BUILD=$(abspath $(BUILD)) bash tests/cluster/start.sh
cluster-stop:
	bash tests/cluster/stop.sh

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

clean:
	rm -rf $(BUILD)

# libFuzzer over the image reader + flattener (clang).  FUZZ_SECONDS=N.
soak:
	BUILD=$(BUILD) BERTH_TESTS=soak bash tests/run-all.sh

fuzz:
	BUILD=$(BUILD) bash tests/fuzz/run.sh

# Debian package (dpkg-buildpackage -b); the .deb lands in build/deb/.
deb:
	bash tests/packaging/build-deb.sh $(BUILD)/deb
