# Builds the libFuzzer targets (clang, ASan + UBSan): the library sources
# (conf/, executor/) once into an archive, then one binary per
# tests/fuzz/fuzz_*.c.  Used by tests/fuzz/run.sh:
#   make -f tests/fuzz/fuzz.mk OUT=build/fuzz -j2
OUT      ?= build/fuzz
FUZZ_CC  ?= clang
PKGS     := libarchive json-c libcurl libcrypto libsquashfs1
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS_F := -std=gnu11 -I. -g -O1 $(SAN) $(shell pkg-config --cflags $(PKGS))
LIBS_F   := $(shell pkg-config --libs $(PKGS)) -ldl -lpthread
LIB_SRC  := $(wildcard conf/*.c executor/*.c executor/*/*.c executor/*/*/*.c)
HEADERS  := $(wildcard conf/*.h executor/*.h executor/*/*.h executor/*/*/*.h)
TARGETS  := $(patsubst tests/fuzz/%.c,$(OUT)/%,$(wildcard tests/fuzz/fuzz_*.c))

all: $(TARGETS)

$(OUT)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_F) -fsanitize=fuzzer-no-link -c -o $@ $<

$(OUT)/libberth.a: $(patsubst %.c,$(OUT)/obj/%.o,$(LIB_SRC))
	rm -f $@
	ar rcs $@ $^

# A target may #include a library file to reach its static parsers; the
# archive then supplies only what that file does not define.
$(OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(OUT)/libberth.a $(HEADERS) $(LIB_SRC)
	$(FUZZ_CC) $(CFLAGS_F) -fsanitize=fuzzer -o $@ $< $(OUT)/libberth.a $(LIBS_F)

.PHONY: all
