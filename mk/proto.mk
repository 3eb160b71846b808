# Protocol Buffers: `make proto` regenerates the committed Go code of every .proto in the repo
# (today services/pricing/proto/carpool/pricing/v1/pricing.proto -> services/pricing/pricingpb/).
# `make proto-check` regenerates into a temporary folder and fails when the committed code is stale.
# `make proto-tools` installs the generators: protoc from Debian's protobuf-compiler (with apt-get,
# when run as root and protoc is missing) and the pinned protoc-gen-go / protoc-gen-go-grpc into
# $(PROTO_BIN) (with `go install`, when missing or of another version).
#
# This file is included from the Makefile and also works alone: make -f mk/proto.mk proto

GO ?= go

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTO_MODULE := github.com/carpoolsla/carpoolsla
# The folders that hold .proto files, each one an import root (-I).
PROTO_ROOTS  := services/pricing/proto
PROTO_BIN    ?= $(CURDIR)/bin/proto
PROTOC       ?= protoc

.PHONY: proto proto-tools proto-check

## proto: regenerate the Go code of every .proto (commit the result).
proto: proto-tools
	@$(call proto_gen,$(CURDIR))
	@echo "proto: generated Go code from $(PROTO_ROOTS)"

## proto-check: fail when committed generated code differs from what the .proto files generate.
## The header line naming the protoc release is ignored, so another protoc release does not count as stale.
proto-check: proto-tools
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call proto_gen,$$tmp) || exit 1; \
	status=0; \
	for f in $$(cd "$$tmp" && find . -name '*.go' | sort); do \
	  if [ ! -f "$$f" ]; then echo "proto-check: $$f is not committed; run make proto" >&2; status=1; continue; fi; \
	  if ! diff -u -I '^// .*protoc  *v[0-9]' "$$f" "$$tmp/$$f" >/dev/null; then \
	    diff -u -I '^// .*protoc  *v[0-9]' "$$f" "$$tmp/$$f" | head -40 >&2; \
	    echo "proto-check: $$f is stale; run make proto" >&2; status=1; \
	  fi; \
	done; \
	exit $$status

proto-tools:
	@command -v $(PROTOC) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "proto-tools: installing protobuf-compiler with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null; \
	  else \
	    echo "proto-tools: protoc is missing: run as root, or apt-get install protobuf-compiler" >&2; exit 1; \
	  fi; }
	@mkdir -p $(PROTO_BIN)
	@[ "$$($(PROTO_BIN)/protoc-gen-go --version 2>/dev/null)" = "protoc-gen-go $(PROTOC_GEN_GO_VERSION)" ] || { \
	  echo "proto-tools: go install protoc-gen-go@$(PROTOC_GEN_GO_VERSION) into $(PROTO_BIN)"; \
	  GOBIN=$(PROTO_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION); }
	@[ "$$($(PROTO_BIN)/protoc-gen-go-grpc --version 2>/dev/null)" = "protoc-gen-go-grpc $(PROTOC_GEN_GO_GRPC_VERSION:v%=%)" ] || { \
	  echo "proto-tools: go install protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION) into $(PROTO_BIN)"; \
	  GOBIN=$(PROTO_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION); }

# proto_gen runs protoc over every .proto under PROTO_ROOTS, writing Go files under $(1) at their
# package's path in the module (go_package); $(1) must be absolute, and $(CURDIR) regenerates in place.
define proto_gen
for root in $(PROTO_ROOTS); do \
  files=$$(cd $$root && find . -name '*.proto' | sed 's|^\./||' | sort); \
  [ -n "$$files" ] || continue; \
  (cd $$root && $(PROTOC) -I . \
    --plugin=protoc-gen-go=$(PROTO_BIN)/protoc-gen-go \
    --plugin=protoc-gen-go-grpc=$(PROTO_BIN)/protoc-gen-go-grpc \
    --go_out=$(1) --go_opt=module=$(PROTO_MODULE) \
    --go-grpc_out=$(1) --go-grpc_opt=module=$(PROTO_MODULE) \
    $$files) || exit 1; \
done
endef
