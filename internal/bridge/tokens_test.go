package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStateFileIs0600AndRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &State{Gateway: "https://gw.example/notes", ClientID: "c1", TokenEndpoint: "https://gw.example/oauth2/token"}
	s.ApplyLogin(TokenResponse{AccessToken: "at1", RefreshToken: "rt1", ExpiresIn: 60}, now)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	got, err := LoadState(path, s.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at1" || got.RefreshToken != "rt1" || got.ClientID != "c1" || !got.Expiry.Equal(now.Add(time.Minute)) ||
		got.Logins != 1 || got.Refreshes != 0 || !got.LastLogin.Equal(now) {
		t.Errorf("read back %+v", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want the file alone (no temporary left)", len(entries))
	}
}

func TestStateRefreshBookkeeping(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &State{Gateway: "g"}
	if !s.Expired(now, 0) {
		t.Error("no token counts as expired")
	}
	s.ApplyLogin(TokenResponse{AccessToken: "at1", RefreshToken: "rt1", ExpiresIn: 5}, now)
	if s.Expired(now.Add(2*time.Second), time.Second) || !s.Expired(now.Add(4*time.Second), time.Second) {
		t.Error("expiry margin not applied")
	}
	later := now.Add(10 * time.Second)
	s.ApplyRefresh(TokenResponse{AccessToken: "at2", RefreshToken: "rt2", ExpiresIn: 5}, later)
	if s.AccessToken != "at2" || s.RefreshToken != "rt2" || s.Refreshes != 1 || s.Logins != 1 || !s.LastRefresh.Equal(later) {
		t.Errorf("after a rotating refresh: %+v", s)
	}
	s.ApplyRefresh(TokenResponse{AccessToken: "at3"}, later)
	if s.RefreshToken != "rt2" || !s.Expiry.IsZero() || s.Refreshes != 2 {
		t.Errorf("a refresh without a new refresh token keeps the old one, no expiry: %+v", s)
	}
	s.ClearTokens()
	if s.AccessToken != "" || s.RefreshToken != "" || s.Refreshes != 2 {
		t.Errorf("cleared: %+v", s)
	}
}

func TestLoadStateRefuses(t *testing.T) {
	dir := t.TempDir()
	missing, err := LoadState(filepath.Join(dir, "none.json"), "g")
	if err != nil || missing.Gateway != "g" || missing.AccessToken != "" {
		t.Fatalf("missing file: %+v %v", missing, err)
	}
	path := filepath.Join(dir, "s.json")
	if err := (&State{Gateway: "g"}).Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path, "other"); err == nil || !strings.Contains(err.Error(), "belongs to") {
		t.Errorf("another gateway's file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path, "g"); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a 0644 file: %v", err)
	}
}

func TestDefaultTokenFile(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	t.Setenv("HOME", "/home/x")
	a, err := DefaultTokenFile("https://gw.example/notes")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultTokenFile("https://gw.example/wiki")
	if filepath.Dir(a) != filepath.Join("/cfg", "mcpgw", "connect") || a == b || !strings.HasSuffix(a, ".json") {
		t.Errorf("token files %s and %s", a, b)
	}
}

func TestChallengeParam(t *testing.T) {
	for in, want := range map[string]string{
		`Bearer resource_metadata="https://g/.well-known/oauth-protected-resource/notes"`: "https://g/.well-known/oauth-protected-resource/notes",
		`Bearer error="invalid_token", resource_metadata="https://g/x"`:                   "https://g/x",
		`Bearer resource_metadata=https://g/y, error="invalid_token"`:                     "https://g/y",
		`Bearer error="invalid_token"`:                                                    "",
	} {
		if got := challengeParam(in, "resource_metadata"); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}
