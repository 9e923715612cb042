package upstream

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealerRoundTripAndRejections(t *testing.T) {
	key, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sess := Session{Backend: "notes", Subject: "https://idp alice", Upstream: "mcp-session-123"}
	id, err := s.Seal(sess)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("session id has a character MCP forbids: %q", id)
		}
	}
	if strings.Contains(id, "alice") || strings.Contains(id, "mcp-session-123") {
		t.Fatal("the sealed id shows what it carries")
	}
	if got, err := s.Open(id); err != nil || got != sess {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	again, _ := s.Seal(sess)
	if again == id {
		t.Fatal("two seals of one session are identical: the nonce is not random")
	}

	otherKey, _ := NewSessionKey()
	other, _ := NewSealer(otherKey)
	blob, _ := base64.RawURLEncoding.DecodeString(id)
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-1] ^= 1
	for name, bad := range map[string]string{
		"other key's id": func() string { x, _ := other.Seal(sess); return x }(),
		"truncated":      id[:len(id)-3],
		"tampered":       base64.RawURLEncoding.EncodeToString(flipped),
		"not base64":     "!!!",
		"empty":          "",
		"short":          "AAAA",
	} {
		if _, err := s.Open(bad); err != ErrBadSession {
			t.Errorf("%s: Open error %v, want ErrBadSession", name, err)
		}
	}
}

func TestSessionKeyForms(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, SessionKeyBytes)
	for name, form := range map[string][]byte{
		"raw":       raw,
		"base64":    []byte(base64.StdEncoding.EncodeToString(raw) + "\n"),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"hex":       []byte(hex.EncodeToString(raw)),
	} {
		k, err := ParseSessionKey(form)
		if err != nil || !bytes.Equal(k, raw) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseSessionKey([]byte("too short")); err == nil {
		t.Error("a short key was accepted")
	}
	file := filepath.Join(t.TempDir(), "session.key")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if k, ok, err := LoadSessionKey("", file); err != nil || !ok || !bytes.Equal(k, raw) {
		t.Fatalf("from file: %v %v", ok, err)
	}
	if _, ok, err := LoadSessionKey("", ""); ok || err != nil {
		t.Fatal("no key configured must report ok=false without error")
	}
	if _, _, err := LoadSessionKey("nope", ""); err == nil || !strings.Contains(err.Error(), "server.session_key") {
		t.Fatalf("bad inline key: %v", err)
	}
	if _, err := NewSealer(raw[:16]); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}
