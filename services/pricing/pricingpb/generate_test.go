package pricingpb

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from the .proto files
// with the pinned generators (make -f mk/proto.mk proto-check) and fails
// when the committed files differ. The make target installs what is
// missing: protoc with apt-get when run as root, the plugins with go
// install into bin/proto.
func TestGeneratedCodeIsFresh(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "mk", "proto.mk")); err != nil {
		t.Fatalf("finding mk/proto.mk from %s: %v", root, err)
	}
	cmd := exec.Command("make", "--no-print-directory", "-f", "mk/proto.mk", "proto-check")
	cmd.Dir = root
	// A make that runs go test must not hand its jobserver to this one.
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=", "MFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generated code is stale or could not be regenerated (run `make proto`, commit the result): %v\n%s", err, out)
	}
}

// TestDescriptorNamesTheService pins the wire names callers depend on.
func TestDescriptorNamesTheService(t *testing.T) {
	if Pricing_Quote_FullMethodName != "/carpool.pricing.v1.Pricing/Quote" {
		t.Fatalf("full method %s", Pricing_Quote_FullMethodName)
	}
	if got := File_carpool_pricing_v1_pricing_proto.Path(); got != "carpool/pricing/v1/pricing.proto" {
		t.Fatalf("proto path %s", got)
	}
}
