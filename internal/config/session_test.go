package config

import (
	"strings"
	"testing"
	"time"
)

// server.session_max_age and server.session_idle_timeout: defaults, file and
// environment values, and what validation refuses.
func TestSessionLifetimeKeys(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		environ  []string
		wantAge  time.Duration
		wantIdle time.Duration
		wantErr  []string
	}{
		{name: "defaults", yaml: issuerYAML, wantAge: 24 * time.Hour, wantIdle: time.Hour},
		{
			name:    "from the file",
			yaml:    issuerYAML + "server: {session_max_age: 8h, session_idle_timeout: 15m}\n",
			wantAge: 8 * time.Hour, wantIdle: 15 * time.Minute,
		},
		{
			name:    "from the environment",
			yaml:    issuerYAML,
			environ: []string{"MCPGW_SERVER__SESSION_MAX_AGE=2h", "MCPGW_SERVER__SESSION_IDLE_TIMEOUT=90s"},
			wantAge: 2 * time.Hour, wantIdle: 90 * time.Second,
		},
		{
			name:    "negative",
			yaml:    issuerYAML + "server: {session_max_age: -1h, session_idle_timeout: -1s}\n",
			wantErr: []string{"server.session_max_age: must be > 0", "server.session_idle_timeout: must be > 0"},
		},
		{
			name:    "a bare number would be nanoseconds",
			yaml:    issuerYAML + "server: {session_max_age: 3600}\n",
			wantErr: []string{"server.session_max_age: want a duration with a unit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.yaml), tt.environ)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("missing %q in:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := c.Server.SessionLifetime(); got != tt.wantAge {
				t.Errorf("session_max_age = %v, want %v", got, tt.wantAge)
			}
			if got := c.Server.SessionIdleLimit(); got != tt.wantIdle {
				t.Errorf("session_idle_timeout = %v, want %v", got, tt.wantIdle)
			}
		})
	}
	// A Config built in code leaves both unset: the defaults apply.
	var s Server
	if s.SessionLifetime() != DefaultSessionMaxAge || s.SessionIdleLimit() != DefaultSessionIdleTimeout {
		t.Errorf("zero Server: %v / %v", s.SessionLifetime(), s.SessionIdleLimit())
	}
}
