# modelstorefs: build, test, demo.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/modelstorefs

.PHONY: all build install test unit integration bench demo vet fmt fmt-check clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/modelstorefs

install:
	$(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/modelstorefs

# The whole suite: vet, formatting, unit tests and real FUSE mounts, with -race.
test: vet fmt-check
	$(GO) test -race -count=1 -timeout 20m ./...

# Unit tests only (no mounts).
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

integration:
	$(GO) test -race -count=1 -timeout 20m ./integration/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./...

# Build, serve the bundled sample store on 127.0.0.1, mount it, show it, unmount.
demo: build
	bash scripts/demo.sh $(BIN)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
