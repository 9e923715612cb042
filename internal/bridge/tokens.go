package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is what `mcpgw connect` keeps for one gateway URL between runs: the
// client it registered at the gateway's authorization server and the tokens
// of the person's last login. It holds secrets, so its file is 0600 in a
// 0700 directory and it is never printed.
type State struct {
	// Gateway is the MCP URL the state belongs to (a changed URL gets its
	// own file; this field only guards against a hand-copied one).
	Gateway string `json:"gateway"`

	// What discovery found (RFC 9728, then RFC 8414).
	Resource              string `json:"resource,omitempty"`
	Issuer                string `json:"issuer,omitempty"`
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`
	RegistrationEndpoint  string `json:"registration_endpoint,omitempty"`

	// The registered public client (RFC 7591), kept across logins: its
	// redirect URI's port changes per login (loopback ports match on any).
	ClientID string `json:"client_id,omitempty"`

	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`

	// Bookkeeping: how many browser logins and refreshes this file saw,
	// and when the last of each happened.
	Logins      int       `json:"logins"`
	Refreshes   int       `json:"refreshes"`
	LastLogin   time.Time `json:"last_login,omitzero"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
}

// TokenResponse is the token endpoint's answer (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// ApplyLogin records the tokens of a finished browser login.
func (s *State) ApplyLogin(tr TokenResponse, now time.Time) {
	s.setTokens(tr, now)
	s.Logins++
	s.LastLogin = now
}

// ApplyRefresh records the tokens of a refresh. The gateway rotates refresh
// tokens; one that does not send a new refresh token keeps the old one valid.
func (s *State) ApplyRefresh(tr TokenResponse, now time.Time) {
	old := s.RefreshToken
	s.setTokens(tr, now)
	if s.RefreshToken == "" {
		s.RefreshToken = old
	}
	s.Refreshes++
	s.LastRefresh = now
}

func (s *State) setTokens(tr TokenResponse, now time.Time) {
	s.AccessToken, s.RefreshToken = tr.AccessToken, tr.RefreshToken
	s.Expiry = time.Time{}
	if tr.ExpiresIn > 0 {
		s.Expiry = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
}

// ClearTokens forgets the tokens (refresh refused: revoked or expired); the
// client registration stays.
func (s *State) ClearTokens() {
	s.AccessToken, s.RefreshToken, s.Expiry = "", "", time.Time{}
}

// Expired reports whether the access token is gone or ends within margin.
func (s *State) Expired(now time.Time, margin time.Duration) bool {
	if s.AccessToken == "" {
		return true
	}
	return !s.Expiry.IsZero() && !now.Add(margin).Before(s.Expiry)
}

// DefaultTokenFile is os.UserConfigDir()/mcpgw/connect/<hash>.json, the hash
// being the first 16 bytes of SHA-256 of the gateway URL, hex.
func DefaultTokenFile(gatewayURL string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no user config directory for the token file (give --token-file): %w", err)
	}
	sum := sha256.Sum256([]byte(gatewayURL))
	return filepath.Join(dir, "mcpgw", "connect", hex.EncodeToString(sum[:16])+".json"), nil
}

// LoadState reads path. A missing file is an empty state for gatewayURL; a
// file of another gateway, or one others may read, is refused.
func LoadState(path, gatewayURL string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Gateway: gatewayURL}, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): it holds tokens; chmod 600 it or remove it", path, fi.Mode().Perm())
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to log in again)", path, err)
	}
	if s.Gateway != gatewayURL {
		return nil, fmt.Errorf("%s belongs to %q, not %q", path, s.Gateway, gatewayURL)
	}
	return &s, nil
}

// Save writes the state to path atomically (a 0600 temporary file renamed
// over it), creating its directory 0700.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimSuffix(filepath.Base(path), ".json")+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
