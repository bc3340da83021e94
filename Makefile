# Makefile: builds lib/libdisagg.a, daemon/disaggd and tui/disagg, and runs
# every test.  Plain GNU make, one file, no recursion into sub-folders.
#
#   make                    build (warnings are errors)
#   make V=1                show the full commands
#   make SANITIZE=address,undefined   or   SANITIZE=thread
#   make CUDA=1             compile the CUDA-dependent files (needs /usr/local/cuda)
#   make deps               install missing Debian packages (root)
#   make check              deps, build, run every test
#   make memcheck           unit tests under valgrind
#   make fuzz               bounded libFuzzer run of every target (FUZZ_SECONDS)
#   make demo               deps, build, a one-host pipeline with sample requests
#   make install            PREFIX=/usr/local DESTDIR= SYSCONFDIR=/etc: programs,
#                           man pages, etc/disagg.ini, systemd units, the
#                           stage ABI header, the Python package disagg
#   make soak               10 minutes of load, cancels and transformer kills
#                           (SOAK_SECONDS, SOAK_RATE, SOAK_KILL_EVERY); not in check

CC       ?= cc
CLANG    ?= clang
AR       ?= ar
PKG      ?= pkg-config
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
FUZZ_SECONDS ?= 60

PKGS     := libczmq libzmq inih libfabric msgpack ncursesw libxxhash libsystemd \
            libmicrohttpd
# Embedded CPython for python: stages: Debian's 3.11, never another
# python3 that PATH may find first.
PYTHON   ?= /usr/bin/python3
PY_CONFIG ?= $(PYTHON)-config
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla -Wwrite-strings -Werror

# Lazily evaluated so that 'make deps' can run before pkg-config knows them.
PKG_CFLAGS = $(shell $(PKG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell $(PKG) --libs $(PKGS) 2>/dev/null)
# -isystem: Python's headers are not held to our warnings.
PY_CFLAGS  = $(patsubst -I%,-isystem %,$(shell $(PY_CONFIG) --includes 2>/dev/null))
PY_LIBS    = $(shell $(PY_CONFIG) --embed --ldflags 2>/dev/null)

DG_CFLAGS  = -std=gnu11 $(WARNINGS) $(CFLAGS) -Ilib $(PKG_CFLAGS) $(PY_CFLAGS) -MMD -MP
DG_LIBS    = $(PKG_LIBS) $(PY_LIBS) -lpthread -ldl -lm

ifneq ($(SANITIZE),)
DG_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
             -fno-omit-frame-pointer -O1
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

ifeq ($(CUDA),1)
CUDA_HOME ?= /usr/local/cuda
ifeq ($(wildcard $(CUDA_HOME)/include/cuda_runtime.h),)
$(error CUDA=1 needs $(CUDA_HOME)/include/cuda_runtime.h; set CUDA_HOME)
endif
DG_CFLAGS += -DDG_CUDA=1 -I$(CUDA_HOME)/include
DG_LIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
endif

ifeq ($(V),1)
Q :=
QUIET = @:
else
Q := @
QUIET = @printf '  %-7s %s\n'
endif

B := build

LIB_SRC    := $(sort $(wildcard lib/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
DAEMON_SRC := $(sort $(wildcard daemon/*.c))
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/%.o)
TUI_SRC    := $(sort $(wildcard tui/*.c))
TUI_OBJ    := $(TUI_SRC:%.c=$(B)/%.o)
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_SRC   := $(sort $(wildcard tests/tools/*.c tests/pipeline/*.c))
TOOL_BIN   := $(patsubst %.c,$(B)/tests/%,$(notdir $(TOOL_SRC)))
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
REPLAY_BIN := $(FUZZ_NAMES:%=$(B)/tests/replay_%)
FUZZ_BIN   := $(FUZZ_NAMES:%=$(B)/fuzz/fuzz_%)
FUZZ_LIBOBJ := $(LIB_SRC:%.c=$(B)/fuzz/%.o)

PROGRAMS := lib/libdisagg.a daemon/disaggd tui/disagg

.PHONY: all deps check check-run memcheck fuzz fuzz-build demo soak install clean \
        test-bins FORCE

all: $(PROGRAMS)

# Keep intermediate objects of the chained test rules.
.SECONDARY:

# Rebuild everything when the flags change (a SANITIZE build after a plain
# one must not reuse plain objects).
$(B)/FLAGS: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(DG_CFLAGS) $(LDFLAGS) $(DG_LIBS)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(B)/%.o: %.c $(B)/FLAGS
	@mkdir -p $(dir $@)
	$(QUIET) CC $<
	$(Q)$(CC) $(DG_CFLAGS) -c -o $@ $<

lib/libdisagg.a: $(LIB_OBJ)
	$(QUIET) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

daemon/disaggd: $(DAEMON_OBJ) lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(DAEMON_OBJ) lib/libdisagg.a $(DG_LIBS)

tui/disagg: $(TUI_OBJ) lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TUI_OBJ) lib/libdisagg.a $(DG_LIBS)

$(B)/tests/test_%: $(B)/tests/unit/test_%.o lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< lib/libdisagg.a $(DG_LIBS) -lcmocka

# The console's Events view is tested alone: with the panel code, no
# curses.
$(B)/tests/test_console_events: $(B)/tests/unit/test_console_events.o \
    $(B)/tui/console_events.o $(B)/tui/console_panel.o lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) lib/libdisagg.a $(DG_LIBS) -lcmocka

$(B)/tests/%: $(B)/tests/tools/%.o lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< lib/libdisagg.a $(DG_LIBS)

$(B)/tests/%: $(B)/tests/pipeline/%.o lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< lib/libdisagg.a $(DG_LIBS)

# Corpus replay: the fuzz target with a plain main(), built with $(CC) so it
# also runs under SANITIZE= builds and without clang.
$(B)/tests/replay_%: $(B)/tests/fuzz/fuzz_%.o $(B)/tests/fuzz/replay.o lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(DG_LIBS)

# libFuzzer builds: the library again, with clang and coverage.
FUZZ_CFLAGS = -std=gnu11 $(WARNINGS) -O1 -g -Ilib $(PKG_CFLAGS) $(PY_CFLAGS) -MMD -MP \
              -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer
$(B)/fuzz/%.o: %.c $(B)/FLAGS
	@mkdir -p $(dir $@)
	$(QUIET) CLANG $<
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -c -o $@ $<

$(B)/fuzz/fuzz_%: $(B)/fuzz/tests/fuzz/fuzz_%.o $(FUZZ_LIBOBJ)
	$(QUIET) LINK $@
	$(Q)$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(DG_LIBS)

# The transfer engine's two-process test, linked with the engine built
# with its fault-injection hook (test builds only).  Every file that
# holds the hook is built again with it and linked ahead of the library,
# which then never pulls in its plain copy of those files: each defines
# the same symbols, and a member is pulled only for one still undefined.
FAULT_SRC := $(shell grep -l DG_FAULT_INJECTION lib/*.c)
FAULT_OBJ := $(FAULT_SRC:lib/%.c=$(B)/tests/fault/%.o)
$(B)/tests/fault/%.o: lib/%.c $(B)/FLAGS
	@mkdir -p $(dir $@)
	$(QUIET) CC $< [fault injection]
	$(Q)$(CC) $(DG_CFLAGS) -DDG_FAULT_INJECTION -c -o $@ $<

$(B)/tests/xfer_test: $(B)/tests/xfer/xfer_test.o $(FAULT_OBJ) lib/libdisagg.a
	$(QUIET) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(DG_LIBS)

# The python: stage host: which interpreter, and where the package is
# when it is not beside the program (an installed daemon).
$(B)/lib/stage_python.o $(B)/fuzz/lib/stage_python.o: DG_CFLAGS += \
    -DDG_PYTHON_EXE='"$(PYTHON)"' -DDG_PYTHONDIR='"$(PYTHONDIR)"'
$(B)/fuzz/lib/stage_python.o: FUZZ_CFLAGS += \
    -DDG_PYTHON_EXE='"$(PYTHON)"' -DDG_PYTHONDIR='"$(PYTHONDIR)"'

# Example external stage plugins, loaded with dlopen by the tests.
PLUGIN_SRC := $(sort $(wildcard tests/plugins/*.c))
PLUGIN_SO  := $(PLUGIN_SRC:tests/plugins/%.c=$(B)/tests/plugins/%.so)
$(B)/tests/plugins/%.so: tests/plugins/%.c lib/stage.h $(B)/FLAGS
	@mkdir -p $(dir $@)
	$(QUIET) SO $@
	$(Q)$(CC) $(DG_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS)

test-bins: $(PROGRAMS) $(UNIT_BIN) $(TOOL_BIN) $(REPLAY_BIN) $(B)/tests/xfer_test \
           $(PLUGIN_SO)

deps:
	@sh mk/deps.sh

# 'check' installs first, then re-enters make so pkg-config sees the
# packages it just installed.
check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory check-run

check-run: test-bins
	@B=$(B) sh tests/harness.sh

memcheck: test-bins
	@B=$(B) MEMCHECK=1 sh tests/harness.sh unit

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	  mkdir -p $(B)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $(B)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $$( [ -f tests/fuzz/$$n.dict ] && echo -dict=tests/fuzz/$$n.dict ) \
	    -artifact_prefix=$(B)/fuzz/crash-$$n- \
	    $(B)/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; \
	done

PREFIX     ?= /usr/local
# Where `make install` puts the Python package; the daemons also look
# there.  /usr/local/lib/python3.11/dist-packages is on Debian's sys.path.
PYTHONDIR  ?= $(PREFIX)/lib/python3.11/dist-packages
BINDIR     ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/disagg
SYSCONFDIR ?= /etc
UNITDIR    ?= $(SYSCONFDIR)/systemd/system

# The example configuration is installed only where none exists: an
# upgrade never overwrites an operator's file.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(INCLUDEDIR)/disagg \
	    $(DESTDIR)$(PYTHONDIR)/disagg/tinywan \
	    $(DESTDIR)$(SYSCONFDIR)/disagg $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(DATADIR)
	install -m 644 etc/grafana-disagg.json $(DESTDIR)$(DATADIR)/
	install -m 755 tui/disagg $(DESTDIR)$(BINDIR)/disagg
	install -m 755 daemon/disaggd $(DESTDIR)$(SBINDIR)/disaggd
	install -m 644 lib/stage.h $(DESTDIR)$(INCLUDEDIR)/disagg/stage.h
	install -m 644 lib/python/disagg/*.py $(DESTDIR)$(PYTHONDIR)/disagg/
	install -m 644 lib/python/disagg/tinywan/*.py \
	    $(DESTDIR)$(PYTHONDIR)/disagg/tinywan/
	for m in man/*.[1-9]; do \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; \
	done
	[ -e $(DESTDIR)$(SYSCONFDIR)/disagg/disagg.ini ] || \
	    install -m 644 etc/disagg.ini $(DESTDIR)$(SYSCONFDIR)/disagg/disagg.ini
	for u in etc/systemd/*.service; do \
	    sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$u \
	        > $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done

soak:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all test-bins
	@sh mk/soak.sh

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@sh mk/demo.sh

clean:
	rm -rf $(B) $(PROGRAMS)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
