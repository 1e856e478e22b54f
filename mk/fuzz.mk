# mk/fuzz.mk — libFuzzer targets over byold's decoders (fuzz/), included by the
# Makefile. Built with clang under ASan + UBSan into build-fuzz/ and bin-fuzz/,
# apart from the normal build.
#
#   make fuzz            bin-fuzz/fuzz_frame fuzz_config fuzz_idx fuzz_safetensors
#   make fuzz-corpus     rewrite the seed corpora in fuzz/corpus/ (fuzz/gen_corpus.c)
#   scripts/fuzz.sh 30   run each target for 30 s on a copy of its corpus
#
# Library objects are compiled with -fsanitize=fuzzer-no-link (coverage
# instrumentation, no main); the targets link libFuzzer's main. Objects depend
# on their headers (-MMD), so an edited library file is rebuilt here too.

FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_BIN     := bin-fuzz
FUZZ_TARGETS := frame config idx safetensors
FUZZ_PKGS    := libprotobuf-c inih libcjson zlib libsodium
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wshadow -Wstrict-prototypes \
                -Wno-unused-parameter -fno-fast-math -Iinclude -I$(FUZZ_BUILD) -MMD -MP \
                $(shell pkg-config --cflags $(FUZZ_PKGS)) $(FUZZ_SAN)
FUZZ_LDLIBS  := $(shell pkg-config --libs $(FUZZ_PKGS)) -lm
ifeq ($(WERROR),1)
FUZZ_CFLAGS  += -Werror
endif

# Each target links the objects its module's unit test links (T_frame, T_config,
# ... in the Makefile), built here: the lists stay in step when a module is split.
fz = $(patsubst $(BUILD)/%,$(FUZZ_BUILD)/%,$(1))
FUZZ_PROTO_OBJ     := $(FUZZ_BUILD)/proto/byol.pb-c.o
FZ_frame           := $(call fz,$(T_frame))
FZ_config          := $(call fz,$(T_config))
FZ_idx             := $(call fz,$(T_idx))
FZ_safetensors     := $(call fz,$(T_safetensors))
FUZZ_BINS          := $(FUZZ_TARGETS:%=$(FUZZ_BIN)/fuzz_%)

fuzz: $(FUZZ_BINS)

$(FUZZ_BUILD)/proto/byol.pb-c.c $(FUZZ_BUILD)/proto/byol.pb-c.h: proto/byol.proto
	@mkdir -p $(FUZZ_BUILD)/proto
	protoc-c --c_out=$(FUZZ_BUILD) proto/byol.proto

$(FUZZ_PROTO_OBJ): $(FUZZ_BUILD)/proto/byol.pb-c.c
	$(FUZZ_CC) $(filter-out -Wshadow -Wstrict-prototypes,$(FUZZ_CFLAGS)) \
		-fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/%.o: %.c mk/fuzz.mk | $(FUZZ_BUILD)/proto/byol.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# The targets' own code is sanitized but not instrumented for coverage: its
# checks (hashing frames, comparing buffers) would cost more than the code under
# test and guide nothing.
$(FUZZ_BUILD)/fuzz/%.o: fuzz/%.c mk/fuzz.mk | $(FUZZ_BUILD)/proto/byol.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BIN)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $$(FZ_$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS)

# The seed corpora: valid inputs made by the library's own writers, plus edge
# cases (fuzz/README.md).
$(FUZZ_BIN)/gen_corpus: $(FUZZ_BUILD)/fuzz/gen_corpus.o $(FUZZ_BUILD)/fuzz/gen_frames.o \
		$(sort $(FZ_frame) $(FZ_config) $(FZ_idx) $(FZ_safetensors))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(FUZZ_LDLIBS)

fuzz-corpus: $(FUZZ_BIN)/gen_corpus
	$(FUZZ_BIN)/gen_corpus fuzz/corpus

clean-fuzz:
	rm -rf $(FUZZ_BUILD) $(FUZZ_BIN)

clean: clean-fuzz

.PHONY: fuzz fuzz-corpus clean-fuzz

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
