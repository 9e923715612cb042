package config

import (
	"strings"
	"testing"
)

// The policy bundle limits have defaults and take explicit values; there is
// no "unlimited" (these limits are what keeps a hostile bundle from
// exhausting memory): 0 is the default and a negative value is refused.
func TestPolicyBundleLimits(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want [4]int64 // bytes, uncompressed, files, file bytes
		errs []string
	}{
		{name: "defaults", yaml: minimal, want: [4]int64{64 << 20, 256 << 20, 10000, 64 << 20}},
		{name: "explicit", yaml: minimal + `
policy:
  max_bundle_bytes: 1048576
  max_bundle_uncompressed_bytes: 4194304
  max_bundle_files: 100
  max_bundle_file_bytes: 2097152
`, want: [4]int64{1 << 20, 4 << 20, 100, 2 << 20}},
		{name: "negative", yaml: minimal + `
policy:
  max_bundle_bytes: -1
  max_bundle_uncompressed_bytes: -1
  max_bundle_files: -1
  max_bundle_file_bytes: -5
`, errs: []string{
			"policy.max_bundle_bytes: must not be negative (0: the default)",
			"policy.max_bundle_uncompressed_bytes: must not be negative",
			"policy.max_bundle_files: must not be negative",
			"policy.max_bundle_file_bytes: must not be negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.yaml), nil)
			if len(tt.errs) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded, want errors %q", tt.errs)
				}
				for _, w := range tt.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("missing %q in:\n%s", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := c.Policy
			if got := [4]int64{p.MaxBundleBytes, p.MaxBundleUncompressedBytes, int64(p.MaxBundleFiles), p.MaxBundleFileBytes}; got != tt.want {
				t.Fatalf("limits %v, want %v", got, tt.want)
			}
		})
	}
}
