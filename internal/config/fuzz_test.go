package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary YAML and MCPGW_* variables to Load: it must
// return a Config or an error, never panic, and a Config it returns must
// validate again unchanged.
func FuzzLoad(f *testing.F) {
	// Seeds stay small: the fuzzer minimises every new input, which is slow
	// for a whole reference file.
	f.Add("agents: {a: {private_key: '${K}', backend_access: [hr]}}", "K=v")
	f.Add(minimal, "MCPGW_IDENTITY__ISSUERS__1__AUDIENCES=a,b")
	f.Add("backends: {x: {paths: {a: [1, {b: c}]}}}", "MCPGW_BACKENDS__X__AUTH_CONFIG__A__B=${C}")
	f.Add("identity: {issuers: 5}", "MCPGW_IDENTITY__ISSUERS__0__ISSUER=x")
	f.Add("server: null\nagents: [1, 2]", "MCPGW_AGENTS__0=x")
	f.Fuzz(func(t *testing.T, yaml, env string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, strings.Split(env, "\n"))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a loaded Config fails Validate: %v", err)
		}
		_ = c.String()
	})
}
