package upstream

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	now := time.Unix(1_800_000_000, 0)
	sess, err := NewSession("notes", "https://idp alice", "claude-code", "mcp-session-123", now)
	if err != nil {
		t.Fatal(err)
	}
	if sess.ID == "" || sess.IssuedAt != now.Unix() {
		t.Fatalf("NewSession = %+v", sess)
	}
	if other, _ := NewSession("notes", "https://idp alice", "claude-code", "mcp-session-123", now); other.ID == sess.ID {
		t.Fatal("two sessions got one ID")
	}
	id, err := s.Seal(sess)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("session id has a character MCP forbids: %q", id)
		}
	}
	if strings.Contains(id, "alice") || strings.Contains(id, "mcp-session-123") || strings.Contains(id, "claude-code") {
		t.Fatal("the sealed id shows what it carries")
	}
	if got, err := s.Open(id); err != nil || got != sess {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	again, _ := s.Seal(sess)
	if again == id {
		t.Fatal("two seals of one session are identical: the nonce is not random")
	}
	incomplete := sess
	incomplete.Agent = ""
	if _, err := s.Seal(incomplete); err == nil {
		t.Fatal("a session without an agent was sealed")
	}

	otherKey, _ := NewSessionKey()
	other, _ := NewSealer(otherKey)
	blob, _ := base64.RawURLEncoding.DecodeString(id)
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-1] ^= 1
	// sealRaw seals any plaintext with s's key, as a bug or an older
	// release could have.
	sealRaw := func(plain string, ad []byte) string {
		sealed, err := s.box.Seal([]byte(plain), ad)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(sealed)
	}
	for _, tc := range []struct {
		name, id string
	}{
		{"other key's id", func() string { x, _ := other.Seal(sess); return x }()},
		{"truncated", id[:len(id)-3]},
		{"tampered", base64.RawURLEncoding.EncodeToString(flipped)},
		{"not base64", "!!!"},
		{"empty", ""},
		{"short", "AAAA"},
		{"oversized", strings.Repeat("A", 5000)},
		// The format every release before v2 sealed: no agent, no issue
		// time, and its own associated data.
		{"sealed by an older release", sealRaw(`{"b":"notes","s":"https://idp alice","u":"mcp-session-123"}`, []byte("mcpgw session v1"))},
		{"current format without an agent", sealRaw(`{"n":"x","b":"notes","s":"https://idp alice","u":"u1","t":1800000000}`, sessionAD)},
		{"current format without an issue time", sealRaw(`{"n":"x","b":"notes","s":"https://idp alice","a":"claude-code","u":"u1"}`, sessionAD)},
		{"not JSON", sealRaw(`nope`, sessionAD)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Open(tc.id); err != ErrBadSession {
				t.Errorf("Open error %v, want ErrBadSession", err)
			}
		})
	}
}

func TestSessionExpired(t *testing.T) {
	issued := time.Unix(1_800_000_000, 0)
	sess := Session{IssuedAt: issued.Unix()}
	for _, tc := range []struct {
		name   string
		now    time.Time
		maxAge time.Duration
		want   bool
	}{
		{"just issued", issued, 24 * time.Hour, false},
		{"at the limit", issued.Add(24 * time.Hour), 24 * time.Hour, false},
		{"past the limit", issued.Add(24*time.Hour + time.Second), 24 * time.Hour, true},
		{"a short max age", issued.Add(2 * time.Minute), time.Minute, true},
		{"issued a little ahead of this replica's clock", issued.Add(-30 * time.Second), 24 * time.Hour, false},
		{"issued far in the future", issued.Add(-2 * time.Hour), 24 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sess.Expired(tc.now, tc.maxAge); got != tc.want {
				t.Errorf("Expired = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIdleTracker(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	type use struct {
		id   string
		at   time.Duration // after t0
		want bool
	}
	for _, tc := range []struct {
		name string
		size int
		uses []use
	}{
		{"used within the limit stays alive", 0, []use{{"a", 0, true}, {"a", 50 * time.Minute, true}, {"a", 100 * time.Minute, true}}},
		{"idle past the limit ends", 0, []use{{"a", 0, true}, {"a", 61 * time.Minute, false}}},
		{"an ended session stays ended", 0, []use{{"a", 0, true}, {"a", 61 * time.Minute, false}, {"a", 62 * time.Minute, false}}},
		{"sessions are independent", 0, []use{{"a", 0, true}, {"b", 30 * time.Minute, true}, {"a", 61 * time.Minute, false}, {"b", 61 * time.Minute, true}}},
		{"first seen here counts from now", 0, []use{{"a", 5 * time.Hour, true}, {"a", 5*time.Hour + 59*time.Minute, true}}},
		// The documented limit of a per-replica memory: a forgotten session
		// counts from its next use.
		{"evicted sessions start over", 1, []use{{"a", 0, true}, {"b", time.Minute, true}, {"a", 2 * time.Hour, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewIdleTracker(time.Hour, tc.size)
			for i, u := range tc.uses {
				if got := tr.Use(u.id, t0.Add(u.at)); got != u.want {
					t.Fatalf("use %d (%s at +%v) = %v, want %v", i, u.id, u.at, got, u.want)
				}
			}
		})
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

// TestSealerOpenCache: ids that opened are remembered, boundedly, and the
// memory never lets through an id that would not open.
func TestSealerOpenCache(t *testing.T) {
	key, _ := NewSessionKey()
	const size = 4
	s, err := newSealer(key, size)
	if err != nil {
		t.Fatal(err)
	}
	// issued long ago: Open does not check the age, cached or not; the
	// gateway checks it on every request (TestSessionBindingAndLifetime).
	issued := time.Unix(1_000_000_000, 0)
	var ids []string
	var sessions []Session
	for i := range 3 * size {
		sess, err := NewSession("notes", "https://idp alice", "claude-code", fmt.Sprintf("up-%d", i), issued)
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Seal(sess)
		if err != nil {
			t.Fatal(err)
		}
		ids, sessions = append(ids, id), append(sessions, sess)
	}
	for round := range 2 {
		for i, id := range ids {
			got, err := s.Open(id)
			if err != nil || got != sessions[i] {
				t.Fatalf("round %d: Open(id %d) = %+v, %v; want %+v", round, i, got, err, sessions[i])
			}
			if n := s.opened.Len(); n > size {
				t.Fatalf("%d ids remembered, bound %d", n, size)
			}
		}
	}
	if !s.opened.Contains(ids[len(ids)-1]) {
		t.Fatal("the last id opened is not remembered")
	}
	if !sessions[0].Expired(time.Now(), time.Hour) {
		t.Fatal("test setup: the session should be expired")
	}

	// A remembered id, altered, or sealed by another key's Sealer that
	// opened it: refused, and never remembered.
	last := ids[len(ids)-1]
	blob, _ := base64.RawURLEncoding.DecodeString(last)
	var altered []string
	for _, i := range []int{0, len(blob) / 2, len(blob) - 1} {
		b := bytes.Clone(blob)
		b[i] ^= 0x40
		altered = append(altered, base64.RawURLEncoding.EncodeToString(b))
	}
	otherKey, _ := NewSessionKey()
	other, _ := NewSealer(otherKey)
	foreign, _ := other.Seal(sessions[0])
	if _, err := other.Open(foreign); err != nil {
		t.Fatal(err)
	}
	bad := append(altered, foreign, last[:len(last)-1], last+"A", strings.ToUpper(last[:1])+last[1:])
	for round := range 2 {
		for i, id := range bad {
			if id == last {
				continue
			}
			if _, err := s.Open(id); err != ErrBadSession {
				t.Fatalf("round %d: bad id %d: error %v, want ErrBadSession", round, i, err)
			}
			if s.opened.Contains(id) {
				t.Fatalf("bad id %d was remembered", i)
			}
		}
	}
	if got, err := s.Open(last); err != nil || got != sessions[len(sessions)-1] {
		t.Fatalf("the genuine id after the bad ones: %+v, %v", got, err)
	}
}

func BenchmarkSealerOpen(b *testing.B) {
	key, _ := NewSessionKey()
	s, _ := NewSealer(key)
	sess, _ := NewSession("notes", "https://idp alice", "claude-code", "mcp-session-123", time.Now())
	id, _ := s.Seal(sess)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(id); err != nil {
			b.Fatal(err)
		}
	}
}
