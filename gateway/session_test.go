package gateway

import (
	"github.com/mcpgw/mcpgw/internal/testutil"

	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// withSessionLimits sets short session limits and a second agent of the
// same OAuth client as claude-code, so one token can present a session
// through either.
func withSessionLimits(c *config.Config) {
	c.Server.SessionMaxAge = 3 * time.Hour
	c.Server.SessionIdleTimeout = time.Hour
	c.Agents["claude-code-beta"] = config.Agent{AgentID: "claude-code-beta", ClientID: "claude-client", Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"notes"}}
}

// sealV1 seals s the way every release before the agent binding did: no
// agent, no issue time, its own associated data.
func sealV1(t *testing.T, key []byte, s upstream.Session) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(map[string]string{"b": s.Backend, "s": s.Subject, "u": s.Upstream})
	nonce := make([]byte, aead.NonceSize())
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte("mcpgw session v1")))
}

func TestSessionBindingAndLifetime(t *testing.T) {
	clock := testutil.NewClock()
	first := newHarness(t, harnessOptions{now: clock.Now, mutate: withSessionLimits})
	// A second replica with the same key and clock: what is sealed travels,
	// what is remembered does not.
	second := newHarness(t, harnessOptions{share: first, key: first.key, now: clock.Now, mutate: withSessionLimits})
	sealer, err := upstream.NewSealer(first.key)
	if err != nil {
		t.Fatal(err)
	}
	alice := first.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}

	type step struct {
		advance time.Duration
		on      *harness
		agent   string
		want    int
	}
	tests := []struct {
		name string
		// session rewrites the id the gateway issued (nil: use it as is).
		session func(t *testing.T, id string) string
		steps   []step
	}{
		{name: "the agent that opened it", steps: []step{{0, first, "claude-code", 200}}},
		{name: "another agent of the same client and subject", steps: []step{{0, first, "claude-code-beta", 404}, {0, first, "claude-code", 200}}},
		{name: "used within the idle limit until past the max age", steps: []step{
			{50 * time.Minute, first, "claude-code", 200},
			{50 * time.Minute, first, "claude-code", 200},
			{50 * time.Minute, first, "claude-code", 200},
			{50 * time.Minute, first, "claude-code", 404}, // 3h20m after issue
		}},
		{name: "max age holds on another replica", steps: []step{
			{2 * time.Hour, second, "claude-code", 200},
			{59 * time.Minute, second, "claude-code", 200},
			{2 * time.Minute, second, "claude-code", 404},
		}},
		{name: "idle past the limit stays ended", steps: []step{
			{61 * time.Minute, first, "claude-code", 404},
			{time.Minute, first, "claude-code", 404},
		}},
		// The idle limit is per replica (documented): one that never saw
		// the session counts from its first request.
		{name: "idle on one replica, first use on another", steps: []step{
			{61 * time.Minute, second, "claude-code", 200},
			{0, first, "claude-code", 404},
		}},
		{name: "sealed by an older release", session: func(t *testing.T, id string) string {
			s, err := sealer.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			// A real backend session: only the gateway can refuse it.
			return sealV1(t, first.key, s)
		}, steps: []step{{0, first, "claude-code", 404}, {0, second, "claude-code", 404}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sid := first.openSession("/notes", alice, "claude-code")
			if tc.session != nil {
				sid = tc.session(t, sid)
			}
			for i, st := range tc.steps {
				clock.Advance(st.advance)
				resp := st.on.do(rawRequest{path: "/notes", token: alice, agent: st.agent, session: sid, headers: pv, body: list})
				body := readAll(t, resp)
				if resp.StatusCode != st.want {
					t.Fatalf("step %d (+%v, agent %s): HTTP %d, want %d: %s", i, st.advance, st.agent, resp.StatusCode, st.want, body)
				}
				if st.want == http.StatusNotFound && !json.Valid(body) {
					t.Fatalf("step %d: 404 body is not JSON: %s", i, body)
				}
			}
		})
	}
}
