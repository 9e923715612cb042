package policy

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command line of `make bundle` (keep the two in step): policies/ with
// its .manifest (roots), built and signed by the real `opa build` with the
// throwaway dev key. The gateway verifies and serves the result.
func TestMakeBundleCommandLine(t *testing.T) {
	const repo = "../.."
	tool, err := exec.Command("go", "-C", repo, "tool", "-n", "opa").Output()
	if err != nil {
		t.Fatalf("go tool -n opa: %v", err)
	}
	signingKey, err := filepath.Abs(filepath.Join(repo, "testdata", "keys", "bundle-signing.dev.pem"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mcpgw.tar.gz")

	build := exec.Command(strings.TrimSpace(string(tool)), "build", "-b", "policies", "--ignore", "*_test.rego",
		"--revision", "v9.9.9-test", "--signing-key", signingKey, "--signing-alg", "RS256", "-o", out)
	build.Dir = repo
	start := time.Now()
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("opa build: %v\n%s", err, output)
	}
	t.Logf("opa build took %s", time.Since(start).Round(time.Millisecond))

	publicKey := filepath.Join(repo, "testdata", "keys", "bundle-signing.dev.pub.pem")
	report, err := VerifyBundle(out, VerifyOptions{Key: publicKey})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range report.Files {
		names = append(names, f.Name)
	}
	if report.Revision != "v9.9.9-test" || strings.Join(report.Roots, ",") != "mcp,mcpgw,system/log" || report.KeyID != "default" ||
		!strings.Contains(strings.Join(names, ","), "policies/mcp/gateway/gateway.rego") || strings.Contains(strings.Join(names, ","), "_test.rego") {
		t.Fatalf("report %+v", report)
	}

	e, _ := newEngine(t, Options{Source: out, VerificationKey: publicKey})
	if err := e.Ready(); err != nil || e.Revision() != "v9.9.9-test" {
		t.Fatalf("revision %q, ready %v", e.Revision(), err)
	}
	if d := e.Decide(context.Background(), caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", nil)); !d.Allow {
		t.Fatalf("viewer get_employee denied: %v", d.Reasons)
	}
	if d := e.Decide(context.Background(), caller([]string{"mcp-viewers"}, writeScopes, "employees", "delete_employee", nil)); d.Allow {
		t.Fatal("viewer delete_employee allowed")
	}
}
