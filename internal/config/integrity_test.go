package config

import "testing"

func TestIntegrityMode(t *testing.T) {
	tests := []struct {
		value     string
		mode      string
		enforcing bool
	}{
		{"", IntegrityOff, false},
		{IntegrityOff, IntegrityOff, false},
		{IntegrityObserve, IntegrityObserve, false},
		{IntegrityEnforce, IntegrityEnforce, true},
		{IntegrityTrustOnFirstUse, IntegrityTrustOnFirstUse, true},
	}
	for _, tt := range tests {
		b := Backend{ToolIntegrity: tt.value}
		if got := b.IntegrityMode(); got != tt.mode {
			t.Errorf("IntegrityMode(%q) = %q, want %q", tt.value, got, tt.mode)
		}
		if got := b.Enforcing(); got != tt.enforcing {
			t.Errorf("Enforcing(%q) = %v, want %v", tt.value, got, tt.enforcing)
		}
	}
}
