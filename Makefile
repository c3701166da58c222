# Makefile.in: ./configure turns this into Makefile.  
PREFIX = /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
DATADIR = $(PREFIX)/share
SYSCONFDIR = /usr/local/etc
LOCALSTATEDIR = /usr/local/var
RUNSTATEDIR = /run
QEMU = /usr/bin/qemu-system-x86_64
VERSION = 0.1
DESTDIR =

CC = cc
SAN_FLAGS = 
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -I. -Wall -Wextra -Wshadow -Wformat=2 -Wno-missing-field-initializers -I/usr/include/json-c  $(SAN_FLAGS) $(CFLAGS)
LIBS = -ljson-c -luring  -laio -lpthread
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

# Each module is every .c in its directory: adding a file needs no Makefile edit.
COMMON_SRCS = $(wildcard common/*.c)
POLICY_SRCS = $(wildcard policy/*.c)
QMP_SRCS = $(wildcard qmp/*.c)
LAUNCHER_SRCS = $(filter-out launcher/main.c,$(wildcard launcher/*.c))
LIB_OBJS = $(patsubst %.c,%.o,$(COMMON_SRCS) $(POLICY_SRCS) $(QMP_SRCS) $(LAUNCHER_SRCS))
HEADERS = config.h $(wildcard common/*.h policy/*.h qmp/*.h launcher/*.h)

UNIT_SRCS = $(wildcard tests/unit/test-*.c)
UNIT_BINS = $(patsubst %.c,%,$(UNIT_SRCS))
TEST_HELPER_SRCS = $(wildcard tests/helpers/*.c)
TEST_HELPERS = $(patsubst %.c,%,$(TEST_HELPER_SRCS))

all: kvm-launch

%.o: %.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

libkl.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

kvm-launch: launcher/main.o libkl.a
	$(CC) $(ALL_LDFLAGS) -o $@ launcher/main.o libkl.a $(LIBS)

tests/unit/test-%: tests/unit/test-%.c tests/unit/unit.h libkl.a $(HEADERS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< libkl.a $(LIBS)

tests/helpers/%: tests/helpers/%.c libkl.a $(HEADERS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< libkl.a $(LIBS)

test-programs: kvm-launch $(UNIT_BINS) $(TEST_HELPERS)

# The suites.  Every test prints why and exits 77 when something it needs is absent.
UNIT_TESTS = $(UNIT_BINS)
CLI_TESTS = $(sort $(wildcard tests/cli/t-*.sh))
QEMU_TESTS = $(sort $(wildcard tests/qemu/t-*.sh))
GUEST_TESTS = $(sort $(wildcard tests/guest/t-*.sh))
LIBVIRT_TESTS = $(sort $(wildcard tests/libvirt/t-*.sh))
BAD_TESTS = $(sort $(wildcard tests/bad/t-*.sh))
RUN_TESTS = QEMU=$(QEMU) KL_TOP=$(CURDIR) sh tests/run-tests.sh

check: test-programs
	@$(RUN_TESTS) $(UNIT_TESTS) $(CLI_TESTS) $(BAD_TESTS) $(QEMU_TESTS) $(GUEST_TESTS) $(LIBVIRT_TESTS)
check-unit: test-programs
	@$(RUN_TESTS) $(UNIT_TESTS)
check-cli: test-programs
	@$(RUN_TESTS) $(CLI_TESTS)
check-bad: test-programs
	@$(RUN_TESTS) $(BAD_TESTS)
check-qemu: test-programs
	@$(RUN_TESTS) $(QEMU_TESTS)
check-guest: test-programs
	@$(RUN_TESTS) $(GUEST_TESTS)
check-libvirt: test-programs
	@$(RUN_TESTS) $(LIBVIRT_TESTS)

# The whole suite again, in a separate build tree, under ASan and UBSan.
check-asan:
	rm -rf build-asan && mkdir build-asan
	tar cf - --exclude=./build-asan --exclude=./.git --exclude='*.o' --exclude='*.a' . | tar xf - -C build-asan
	cd build-asan && ./configure --prefix=$(PREFIX) --with-qemu=$(QEMU) --enable-asan --enable-werror && \
		$(MAKE) clean && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(MAKE) check

demo: kvm-launch
	sh contrib/demo.sh

bench: kvm-launch
	sh tests/bench/bench.sh

install: kvm-launch
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 kvm-launch $(DESTDIR)$(BINDIR)/kvm-launch
	install -m 0644 doc/kvm-launch.8 $(DESTDIR)$(MANDIR)/man8/kvm-launch.8
	install -m 0644 doc/kvm-launch.conf.5 $(DESTDIR)$(MANDIR)/man5/kvm-launch.conf.5
	install -d $(DESTDIR)$(DATADIR)/doc/kvm-launch/examples
	install -m 0644 contrib/kvm-launch.conf.example $(DESTDIR)$(DATADIR)/doc/kvm-launch/examples/kvm-launch.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kvm-launch $(DESTDIR)$(MANDIR)/man8/kvm-launch.8 \
		$(DESTDIR)$(MANDIR)/man5/kvm-launch.conf.5 \
		$(DESTDIR)$(DATADIR)/doc/kvm-launch/examples/kvm-launch.conf
	-rmdir $(DESTDIR)$(DATADIR)/doc/kvm-launch/examples $(DESTDIR)$(DATADIR)/doc/kvm-launch 2>/dev/null

clean:
	rm -f kvm-launch libkl.a */*.o $(UNIT_BINS) $(TEST_HELPERS)

distclean: clean
	rm -f Makefile config.h

.PHONY: all check check-unit check-cli check-bad check-qemu check-guest check-libvirt check-asan \
	demo bench install uninstall clean distclean test-programs
