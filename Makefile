# modelstorefs: build, install, test, demo.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
# The version: git describe when built from a clone; without git, the
# binary takes it from Go's build information (module version or commit).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.version=$(VERSION))
BIN     ?= bin/modelstorefs

# make install [PREFIX=/usr/local] [DESTDIR=staging root]
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
# mount(8) looks for mount.fuse.modelstorefs in /sbin only, whatever PREFIX.
SBINDIR    ?= /sbin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
UNITDIR    ?= $(PREFIX)/lib/systemd/system

.PHONY: all build install uninstall test unit integration bench demo vet lint fmt fmt-check clean fuzz

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/modelstorefs

# The binary, the mount helper link (so mount -t fuse.modelstorefs and
# fstab lines find it), the man page and shell completions written by the
# binary itself, and the systemd unit pointing at BINDIR.
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/modelstorefs
	ln -sf $(BINDIR)/modelstorefs $(DESTDIR)$(SBINDIR)/mount.fuse.modelstorefs
	$(BIN) man > $(DESTDIR)$(MANDIR)/man1/modelstorefs.1
	$(BIN) completion bash > $(DESTDIR)$(BASHCOMPDIR)/modelstorefs
	$(BIN) completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_modelstorefs
	$(BIN) completion fish > $(DESTDIR)$(FISHCOMPDIR)/modelstorefs.fish
	sed 's|/usr/local/bin/modelstorefs|$(BINDIR)/modelstorefs|g' contrib/modelstorefs.service \
		> $(DESTDIR)$(UNITDIR)/modelstorefs.service
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/modelstorefs.1 $(DESTDIR)$(UNITDIR)/modelstorefs.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/modelstorefs $(DESTDIR)$(SBINDIR)/mount.fuse.modelstorefs \
		$(DESTDIR)$(MANDIR)/man1/modelstorefs.1 $(DESTDIR)$(BASHCOMPDIR)/modelstorefs \
		$(DESTDIR)$(ZSHCOMPDIR)/_modelstorefs $(DESTDIR)$(FISHCOMPDIR)/modelstorefs.fish \
		$(DESTDIR)$(UNITDIR)/modelstorefs.service

# The whole suite: vet, formatting, staticcheck, unit tests and real FUSE
# mounts, with -race (and goleak in every package that starts goroutines);
# the fuzz targets' seed corpora run as plain tests. Timed fuzzing is
# make fuzz (CI runs it after make test).
# Without usable FUSE the integration packages fail; MODELSTOREFS_SKIP_FUSE=1
# skips their mounted tests on purpose (never under CI), and this says so.
# What runs at once, for the wall time on 2 cores: the integration packages
# are named first, so that go test starts them (the longest, mostly waiting
# on mounts and servers) before the unit packages; beside the tests run vet
# and staticcheck (at a lower CPU priority), then the byte engine again
# with every chunk through memory. go test prints each package's result in
# the order named, so the integration package's comes first, once it is
# done (a few minutes); vet's, staticcheck's and the memory run's follow
# the tests'. Any of them failing fails make test.
TEST_PACKAGES := ./integration/ ./integration/faults/ ./...
test: fmt-check
	@if [ "$$MODELSTOREFS_SKIP_FUSE" = 1 ]; then echo "make test: MODELSTOREFS_SKIP_FUSE=1: no integration test, fault matrix row or mount will run" >&2; fi
	@logs=$$(mktemp -d) || exit 1; trap 'rm -rf "$$logs"' EXIT; \
	{ nice -n 10 sh -c '$(GO) vet ./... && $(GO) tool staticcheck ./...' >"$$logs/lint" 2>&1; echo $$? >"$$logs/lint.exit"; \
	  MODELSTOREFS_TEST_ENGINE_MEMORY=1 $(GO) test -race -count=1 ./engine/ >"$$logs/memory" 2>&1; echo $$? >"$$logs/memory.exit"; } & side=$$!; \
	echo "$(GO) test -race -count=1 -parallel 4 -timeout 20m $(TEST_PACKAGES)"; \
	$(GO) test -race -count=1 -parallel 4 -timeout 20m $(TEST_PACKAGES); tests=$$?; \
	wait $$side; \
	echo "$(GO) vet ./... && $(GO) tool staticcheck ./... (exit $$(cat "$$logs/lint.exit"))"; cat "$$logs/lint"; \
	echo "MODELSTOREFS_TEST_ENGINE_MEMORY=1 $(GO) test -race -count=1 ./engine/ (every chunk through memory, a busy cache disk; exit $$(cat "$$logs/memory.exit"))"; \
	cat "$$logs/memory"; \
	[ $$tests = 0 ] && [ "$$(cat "$$logs/lint.exit" "$$logs/memory.exit")" = "$$(printf '0\n0')" ]

# Each fuzz target for FUZZTIME (seed corpora are checked in under testdata/fuzz).
FUZZTIME ?= 5s
FUZZ_TARGETS := remote:FuzzParseListing remote:FuzzParseMaster digits:FuzzValidName \
	digits:FuzzParseInfo digits:FuzzParseAux digits:FuzzStatusPickle cmd/modelstorefs:FuzzStoreDirName \
	cache:FuzzSummary fs:FuzzStoreText cmd/modelstorefs:FuzzLsTable
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(FUZZ_TARGETS)

# Unit tests only (no mounts).
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

integration:
	$(GO) test -race -count=1 -timeout 20m ./integration/...

# Measurements against curl, a local cat, dd, rclone and
# httpdirfs on 127.0.0.1 (needs root and FUSE; ~20 min, medians of 5, sync and
# settled writeback before every timed command). BENCH_OUT=FILE also writes
# the table; BENCH_REPS, BENCH_BUDGET, BENCH_NO_TOOLS: see integration/bench/bench_test.go.
bench:
	MODELSTOREFS_BENCH=1 $(GO) test -count=1 -run '^TestBench$$' -v -timeout 40m ./integration/bench/

# The fault matrix only (also part of make test): real mounts against a
# fault-injecting store on 127.0.0.x, -race, about a minute; prints the table
# (fault | reader saw | bytes verified | daemon alive | recovery). FAULTS_OUT=FILE
# also writes it; FAULTS_PARALLEL=N rows at once (default 4).
.PHONY: faults
faults:
	$(GO) test -race -count=1 -run '^TestFaults$$' -v -timeout 10m ./integration/faults/

# Build, serve the bundled sample store on 127.0.0.1, mount it, show it, unmount.
demo: build
	bash scripts/demo.sh $(BIN)

vet:
	$(GO) vet ./...

# staticcheck, pinned as a tool in go.mod (go tool fetches it through the
# module proxy on first use), with its default checks.
lint:
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
