package interop

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	connectClientScript = "oauth/connect-client.mjs"
	// connectTTL is oauth.access_token_ttl: short, so that the script sees
	// the bridge refresh, and after the revocation log in again.
	connectTTL = 5 * time.Second
	// connectRun bounds the whole script: two Chromium logins and two
	// waits past the token's lifetime, on a shared machine.
	connectRun = 8 * time.Minute
)

// connectReport is what connect-client.mjs prints.
type connectReport struct {
	Steps     []string `json:"steps"`
	Tools     []string `json:"tools"`
	FirstCall struct {
		Text    string `json:"text"`
		IsError bool   `json:"isError"`
	} `json:"firstCall"`
	SecondCall struct {
		Text    string `json:"text"`
		IsError bool   `json:"isError"`
	} `json:"secondCall"`
	ThirdCall struct {
		Text    string          `json:"text"`
		IsError bool            `json:"isError"`
		Error   json.RawMessage `json:"error"`
	} `json:"thirdCall"`
	AfterLogin   connectBook `json:"afterLogin"`
	AfterRefresh struct {
		connectBook
		AccessTokenChanged  bool `json:"accessTokenChanged"`
		RefreshTokenRotated bool `json:"refreshTokenRotated"`
	} `json:"afterRefresh"`
	Revoke struct {
		Status int `json:"status"`
	} `json:"revoke"`
	AfterRevoke struct {
		connectBook
		SameClient          bool `json:"sameClient"`
		RefreshTokenChanged bool `json:"refreshTokenChanged"`
	} `json:"afterRevoke"`
	Fatal       json.RawMessage `json:"fatal"`
	BridgeLog   string          `json:"bridgeLog"`
	TokensInLog bool            `json:"tokensInLog"`
}

type connectBook struct {
	Logins    int  `json:"logins"`
	Refreshes int  `json:"refreshes"`
	HasClient bool `json:"hasClient"`
}

// TestConnectStdioBridge drives `mcpgw connect` (built from this module)
// with the TypeScript SDK's StdioClientTransport against a gateway whose
// authorization server is on: login through the consent page and testidp in
// Chromium (the bridge's login handler), tools/list and tools/call relayed,
// a refresh after the access token's lifetime, and after the refresh token
// is revoked a new browser login by the same registered client. Once at the
// backend's own path, once at the federated endpoint (a token for /mcp, the
// tool by its prefixed name).
func TestConnectStdioBridge(t *testing.T) {
	p := findPeers(t)
	if _, err := os.Stat(chromiumBinary); err != nil {
		t.Fatalf("Chromium is needed for the browser tests (`make interop-deps` installs Debian's): %v", err)
	}
	bin := p.buildGo(t, "./cmd/mcpgw", "mcpgw")
	tests := []struct {
		name, path, tool string
	}{
		{name: "backend path", path: "/" + oauthBackend, tool: "echo"},
		{name: "federated path", path: "/mcp", tool: oauthBackend + "__echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := oauthWorldOptions{accessTokenTTL: connectTTL}
			if tt.path == "/mcp" {
				opts.federatedPath = tt.path
			}
			testConnect(t, p, bin, startOAuthWorld(t, opts), tt.path, tt.tool)
		})
	}
}

func testConnect(t *testing.T, p peers, bin string, w *oauthWorld, path, tool string) {
	tokenFile := filepath.Join(t.TempDir(), "connect", "tokens.json")

	ctx, cancel := context.WithTimeout(t.Context(), connectRun)
	defer cancel()
	res := run(ctx, connectClientScript, command(ctx, p.dir, peerEnv(t), p.node, p.path(connectClientScript),
		"--bin", bin, "--url", w.url+path, "--tool", tool, "--token-file", tokenFile,
		"--client-name", oauthClientPrefix+" connect", "--ttl-seconds", strconv.Itoa(int(connectTTL/time.Second)),
		"--username", oauthUser, "--password", oauthPassword))
	if res.err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	var got connectReport
	if err := json.Unmarshal(res.stdout, &got); err != nil {
		t.Fatalf("%s printed %q: %v\nstderr:\n%s", connectClientScript, res.stdout, err, res.stderr)
	}
	defer func() {
		if t.Failed() {
			t.Logf("steps %v\nbridge stderr:\n%s", got.Steps, got.BridgeLog)
		}
	}()
	if got.Fatal != nil {
		t.Fatalf("failed at step %s: %s", got.Steps[len(got.Steps)-1], got.Fatal)
	}

	// 1. The login on first use, then the relayed list and call.
	if !slices.Contains(got.Tools, tool) {
		t.Errorf("tools %v, want the notes backend's (%s among them)", got.Tools, tool)
	}
	if got.FirstCall.IsError || !strings.Contains(got.FirstCall.Text, "through the bridge") {
		t.Errorf("first call: %+v", got.FirstCall)
	}
	if got.AfterLogin != (connectBook{Logins: 1, Refreshes: 0, HasClient: true}) {
		t.Errorf("after the first login the token file says %+v", got.AfterLogin)
	}
	// 2. Past the access token's lifetime: refreshed (rotated), no new login.
	if got.SecondCall.IsError || !strings.Contains(got.SecondCall.Text, "after refresh") {
		t.Errorf("call after expiry: %+v", got.SecondCall)
	}
	if r := got.AfterRefresh; r.Logins != 1 || r.Refreshes < 1 || !r.AccessTokenChanged || !r.RefreshTokenRotated {
		t.Errorf("after expiry the token file says %+v: want a refresh with a rotated refresh token and no login", r)
	}
	// 3. Revoked: the refresh is refused, the bridge logs in again in the
	// browser with the client it registered, and the call goes through.
	if got.Revoke.Status != 200 {
		t.Errorf("revocation: HTTP %d", got.Revoke.Status)
	}
	if got.ThirdCall.Error != nil || got.ThirdCall.IsError || !strings.Contains(got.ThirdCall.Text, "after revocation") {
		t.Errorf("call after revocation: %+v", got.ThirdCall)
	}
	if r := got.AfterRevoke; r.Logins != 2 || !r.SameClient || !r.RefreshTokenChanged {
		t.Errorf("after revocation the token file says %+v: want a second login by the same client", r)
	}
	if !strings.Contains(got.BridgeLog, "refresh refused") {
		t.Errorf("the bridge did not log the refused refresh")
	}
	if got.TokensInLog {
		t.Errorf("a token appears in the bridge's stderr")
	}
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, mode %v", err, fi.Mode())
	}

	// The registered client is the one the registration rule made the agent's.
	var clients struct {
		Clients []oauthAdminClientEntry `json:"clients"`
	}
	raw := w.adminGet(t, "/admin/v1/oauth/clients", &clients)
	n := 0
	for _, c := range clients.Clients {
		if c.Name == oauthClientPrefix+" connect" {
			n++
			if c.Agent != oauthAgent {
				t.Errorf("client %s is agent %q, want %q", c.ClientID, c.Agent, oauthAgent)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d clients named %q registered, want one: %s", n, oauthClientPrefix+" connect", raw)
	}
}
