# carpoolsla: `make run` builds and runs the live demo (three regions, the SLA engine, the report API
# and status page on http://127.0.0.1:8080, background load); `make test` installs the real servers
# the tests need and runs the whole suite.
GO       ?= go
BIN      := bin/carpoolsla
SPEC     ?= deploy/sla.yaml
# The real servers the tests start (each test starts its own on loopback and stops it after).
TEST_SERVERS ?= all
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME     ?= 30s

.PHONY: all build run test test-go bench generate check-generated verify-generated fmt-check vet lint stack stack-down stack-deps fuzz clean

all: build

# make proto / proto-check / proto-tools (pricing's gRPC code).
include mk/proto.mk

build:
	$(GO) build -o $(BIN) ./cmd/carpoolsla

## run: the live demo on its embedded defaults (DEMO_FLAGS="--fast" for breaker windows in seconds).
DEMO_FLAGS ?=
run: build
	./$(BIN) demo --spec $(SPEC) $(DEMO_FLAGS)

## test: gofmt and vet checks, every package under -race (unit and integration), stale-artefact check.
test: stack-deps fmt-check vet check-generated verify-generated test-go

test-go:
	$(GO) test -race -count=1 -timeout 40m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## generate: regenerate deploy/generated/ and docs/ from the spec (commit the result).
generate: build
	./$(BIN) generate --spec $(SPEC) --quiet

## check-generated: fail when a committed artefact differs from what the spec generates.
check-generated: build
	./$(BIN) generate --spec $(SPEC) --check

## verify-generated: the committed artefacts through the real promtool and amtool.
verify-generated:
	cd deploy/generated/prometheus && promtool check rules rules.yml && promtool test rules rules_test.yml
	amtool check-config deploy/generated/alertmanager/alertmanager.yml
	deploy/generated/alertmanager/routes-test.sh deploy/generated/alertmanager/alertmanager.yml

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint: fmt-check vet
	$(GO) run $(STATICCHECK) ./...

## fuzz: fuzz the spec parser. The kept corpus is sla/spec/testdata/fuzz/FuzzParse (run as seeds by go test);
## copy new entries there from $$(go env GOCACHE)/fuzz/... to keep them.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./sla/spec/

## stack-deps: install (as root, with apt-get) the real servers the tests need.
stack-deps:
	deploy/local/install.sh $(TEST_SERVERS)

## stack / stack-down: start / stop every real server on loopback high ports (data in .stack/).
stack:
	deploy/local/install.sh all
	deploy/local/stack.sh up all

stack-down:
	deploy/local/stack.sh down all

clean:
	rm -rf bin .stack
