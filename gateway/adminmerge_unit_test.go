package gateway

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// sentKeys is the set of top-level keys a PUT body carried.
func sentKeys(keys ...string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, k := range keys {
		out[k] = json.RawMessage(`null`)
	}
	return out
}

// wantProblems checks problems holds one problem naming each of want (and
// nothing else).
func wantProblems(t *testing.T, problems []string, want ...string) {
	t.Helper()
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %d naming %q", problems, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(problems[i], w) {
			t.Fatalf("problem %d = %q, want one naming %q (all: %q)", i, problems[i], w, problems)
		}
	}
}

// TestMergeAgentUnit: an agent PUT meets the stored agent. The placeholder
// GET showed keeps the stored secret; a key left out keeps it too; a
// placeholder where nothing is stored, an environment reference or a file
// not already stored is refused, so the API never makes the gateway read
// its own environment or files into a credential.
func TestMergeAgentUnit(t *testing.T) {
	stored := &config.Agent{ClientSecret: "s3cret", PrivateKey: "-----BEGIN PRIVATE KEY-----x", ClientSecretFile: "", PrivateKeyFile: ""}
	fromFile := &config.Agent{ClientSecret: "${CLAUDE_SECRET}", PrivateKeyFile: "/etc/mcpgw/claude.pem"}
	for _, tc := range []struct {
		name       string
		sent       map[string]json.RawMessage
		v, old     *config.Agent
		wantSecret string
		wantKey    string
		problems   []string
	}{
		{"placeholders keep both", sentKeys("client_secret", "private_key"),
			&config.Agent{ClientSecret: secrets.Placeholder, PrivateKey: secrets.Placeholder}, stored, "s3cret", stored.PrivateKey, nil},
		{"keys left out keep both", sentKeys(), &config.Agent{}, stored, "s3cret", stored.PrivateKey, nil},
		{"a new secret replaces", sentKeys("client_secret"), &config.Agent{ClientSecret: "new"}, stored, "new", stored.PrivateKey, nil},
		{"an empty secret clears", sentKeys("client_secret", "private_key"), &config.Agent{}, stored, "", "", nil},
		{"placeholder on create", sentKeys("client_secret"), &config.Agent{ClientSecret: secrets.Placeholder}, nil, secrets.Placeholder, "",
			[]string{"agents.a.client_secret: [REDACTED] stands for a stored secret, but none is stored here"}},
		{"placeholder where none is stored", sentKeys("private_key"), &config.Agent{PrivateKey: secrets.Placeholder}, &config.Agent{ClientSecret: "s"}, "s", secrets.Placeholder,
			[]string{"agents.a.private_key: [REDACTED] stands for a stored secret"}},
		{"environment reference", sentKeys("client_secret"), &config.Agent{ClientSecret: "${SESSION_KEY}"}, stored, "${SESSION_KEY}", stored.PrivateKey,
			[]string{"agents.a.client_secret: ${...} environment references are resolved only in the config file"}},
		{"environment reference in a key", sentKeys("private_key"), &config.Agent{PrivateKey: "${MCPGW_SERVER_SESSION_KEY}"}, stored, "s3cret", "${MCPGW_SERVER_SESSION_KEY}",
			[]string{"agents.a.private_key: ${...} environment references"}},
		{"the file's own reference, kept by placeholder", sentKeys("client_secret"), &config.Agent{ClientSecret: secrets.Placeholder, PrivateKeyFile: "/etc/mcpgw/claude.pem"}, fromFile, "${CLAUDE_SECRET}", "", nil},
		{"the file's own reference, sent back", sentKeys("client_secret"), &config.Agent{ClientSecret: "${CLAUDE_SECRET}", PrivateKeyFile: "/etc/mcpgw/claude.pem"}, fromFile, "${CLAUDE_SECRET}", "", nil},
		{"the file's reference, left out", sentKeys(), &config.Agent{PrivateKeyFile: "/etc/mcpgw/claude.pem"}, fromFile, "${CLAUDE_SECRET}", "", nil},
		{"another reference than stored", sentKeys("client_secret"), &config.Agent{ClientSecret: "${OTHER}", PrivateKeyFile: "/etc/mcpgw/claude.pem"}, fromFile, "${OTHER}", "",
			[]string{"agents.a.client_secret: ${...} environment references"}},
		{"a new secret file", sentKeys("client_secret_file"), &config.Agent{ClientSecretFile: "/etc/shadow"}, stored, "s3cret", stored.PrivateKey,
			[]string{"agents.a.client_secret_file: files are read only for the config file; send the secret itself in client_secret"}},
		{"a new key file", sentKeys("private_key_file"), &config.Agent{PrivateKeyFile: "/proc/self/environ"}, fromFile, "${CLAUDE_SECRET}", "",
			[]string{"agents.a.private_key_file: files are read only for the config file; send the secret itself in private_key"}},
		{"a file on create", sentKeys("private_key_file"), &config.Agent{PrivateKeyFile: "/k.pem"}, nil, "", "",
			[]string{"agents.a.private_key_file: files are read only"}},
		{"both refused, in order", sentKeys("client_secret", "private_key"), &config.Agent{ClientSecret: "${A}", PrivateKey: secrets.Placeholder}, nil, "${A}", secrets.Placeholder,
			[]string{"client_secret: ${...}", "private_key: [REDACTED] stands for"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := *tc.v
			problems := mergeAgent("agents.a", tc.sent, &v, tc.old)
			wantProblems(t, problems, tc.problems...)
			if v.ClientSecret != tc.wantSecret || v.PrivateKey != tc.wantKey {
				t.Fatalf("merged secret %q key %q, want %q %q", v.ClientSecret, v.PrivateKey, tc.wantSecret, tc.wantKey)
			}
		})
	}
}

// TestMergeBackendUnit: a backend PUT meets the stored backend. What GET
// showed (the URL with its query values hidden, auth_config with its
// secrets as placeholders) keeps the stored values, but only for the same
// destination: a write that re-points the URL or an auth_config address
// must give the secret again.
func TestMergeBackendUnit(t *testing.T) {
	stored := func() *config.Backend {
		return &config.Backend{
			URL:        "https://hr.example.com/mcp?api_key=K0",
			AuthMethod: config.AuthPreSharedKey,
			AuthConfig: map[string]any{
				"api_key":   "K1",
				"token_url": "https://as.example.com/token",
				"oauth":     map[string]any{"client_secret": "S1", "issuer": "https://as.example.com"},
			},
		}
	}
	shown := stored().Redacted()
	if shown.AuthConfig["api_key"] != secrets.Placeholder || shown.URL == stored().URL {
		t.Fatalf("the fixture's secrets are not hidden by Redacted: %+v", shown)
	}
	// asShown is a deep copy of what GET showed, with changes.
	asShown := func(change func(*config.Backend)) *config.Backend {
		b := stored().Redacted()
		if change != nil {
			change(&b)
		}
		return &b
	}
	for _, tc := range []struct {
		name     string
		sent     map[string]json.RawMessage
		v        *config.Backend
		old      *config.Backend
		want     func(*testing.T, *config.Backend)
		problems []string
	}{
		{"GET sent back as it was", sentKeys("url", "auth_config"), asShown(nil), stored(),
			func(t *testing.T, b *config.Backend) {
				if !reflect.DeepEqual(b.AuthConfig, stored().AuthConfig) || b.URL != stored().URL {
					t.Fatalf("merged %+v, want the stored secrets", b)
				}
			}, nil},
		{"auth_config left out", sentKeys("url"), &config.Backend{URL: shown.URL}, stored(),
			func(t *testing.T, b *config.Backend) {
				if !reflect.DeepEqual(b.AuthConfig, stored().AuthConfig) {
					t.Fatalf("auth_config %v, want the stored one", b.AuthConfig)
				}
			}, nil},
		{"a new secret at a new place", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) {
				b.URL = "https://evil.example.com/mcp"
				b.AuthConfig = map[string]any{"api_key": "fresh"}
			}), stored(),
			func(t *testing.T, b *config.Backend) {
				if b.AuthConfig["api_key"] != "fresh" || b.URL != "https://evil.example.com/mcp" {
					t.Fatalf("merged %+v", b)
				}
			}, nil},
		{"url changed, auth_config left out", sentKeys("url"), &config.Backend{URL: "https://evil.example.com/mcp"}, stored(), nil,
			[]string{
				"backends.hr.auth_config.api_key: the destination changed (url); give the secret again",
				"backends.hr.auth_config.oauth: the destination changed (url)",
			}},
		{"url changed, placeholders sent", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.URL = "https://evil.example.com/mcp" }), stored(), nil,
			[]string{
				"backends.hr.auth_config.api_key: the destination changed (url)",
				"backends.hr.auth_config.oauth.client_secret: the destination changed (url)",
			}},
		{"token_url changed, placeholder sent", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["token_url"] = "https://evil.example.com/token" }), stored(), nil,
			[]string{
				"backends.hr.auth_config.api_key: the destination changed (auth_config.token_url)",
				"backends.hr.auth_config.oauth.client_secret: the destination changed (auth_config.token_url)",
			}},
		{"nested issuer changed", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["oauth"].(map[string]any)["issuer"] = "https://evil.example.com" }), stored(), nil,
			[]string{
				"api_key: the destination changed (auth_config.oauth.issuer)",
				"oauth.client_secret: the destination changed (auth_config.oauth.issuer)",
			}},
		{"token_url removed", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { delete(b.AuthConfig, "token_url") }), stored(), nil,
			[]string{"api_key: the destination changed (auth_config.token_url)", "oauth.client_secret: the destination changed (auth_config.token_url)"}},
		{"the URL's hidden query kept", sentKeys("url"), &config.Backend{URL: shown.URL, AuthConfig: nil}, stored(),
			func(t *testing.T, b *config.Backend) {
				if b.URL != stored().URL {
					t.Fatalf("url %q, want the stored one", b.URL)
				}
			}, nil},
		{"placeholder on create", sentKeys("url", "auth_config"),
			&config.Backend{URL: "https://hr.example.com/mcp", AuthConfig: map[string]any{"api_key": secrets.Placeholder}}, nil, nil,
			[]string{"backends.hr.auth_config.api_key: [REDACTED] stands for a stored secret, but none is stored here"}},
		{"placeholder at a new key", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["password"] = secrets.Placeholder }), stored(), nil,
			[]string{"backends.hr.auth_config.password: [REDACTED] stands for a stored secret"}},
		{"environment reference", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["api_key"] = "${MCPGW_SERVER_SESSION_KEY}" }), stored(), nil,
			[]string{"backends.hr.auth_config.api_key: ${...} environment references are resolved only in the config file"}},
		{"nested environment reference", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["oauth"].(map[string]any)["client_secret"] = "${X}" }), stored(), nil,
			[]string{"backends.hr.auth_config.oauth.client_secret: ${...} environment references"}},
		{"file reference", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["api_key_file"] = "/etc/mcpgw/session.key" }), stored(), nil,
			[]string{"backends.hr.auth_config.api_key_file: files are read only for the config file; send the secret itself in api_key"}},
		{"file reference in a list", sentKeys("url", "auth_config"),
			asShown(func(b *config.Backend) { b.AuthConfig["keys"] = []any{map[string]any{"key_file": "/k"}} }), stored(), nil,
			[]string{"backends.hr.auth_config.keys[0].key_file: files are read only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := mergeBackend("backends.hr", tc.sent, tc.v, tc.old)
			wantProblems(t, problems, tc.problems...)
			if tc.want != nil {
				tc.want(t, tc.v)
			}
		})
	}

	// The config file's own references stay when GET's view is sent back.
	fileBackend := &config.Backend{URL: "https://hr.example.com/mcp", AuthConfig: map[string]any{"api_key": "${HR_KEY}", "api_key_file": "/etc/hr.key"}}
	back := fileBackend.Redacted()
	if problems := mergeBackend("backends.hr", sentKeys("url", "auth_config"), &back, fileBackend); len(problems) != 0 {
		t.Fatalf("the stored references sent back: %q", problems)
	}
	if back.AuthConfig["api_key"] != "${HR_KEY}" || back.AuthConfig["api_key_file"] != "/etc/hr.key" {
		t.Fatalf("merged %v", back.AuthConfig)
	}
}

// TestChangedDestinationsUnit: which auth_config keys say where a kept
// secret goes (addresses, issuers, the ID-JAG mode), at any depth; other
// keys change freely.
func TestChangedDestinationsUnit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		sent, stored map[string]any
		want         []string
	}{
		{"same", map[string]any{"token_url": "a"}, map[string]any{"token_url": "a"}, nil},
		{"changed url", map[string]any{"token_url": "b"}, map[string]any{"token_url": "a"}, []string{"p.token_url"}},
		{"key case", map[string]any{"TOKEN_URL": "b"}, map[string]any{"TOKEN_URL": "a"}, []string{"p.TOKEN_URL"}},
		{"added", map[string]any{"token_endpoint": "b"}, map[string]any{}, []string{"p.token_endpoint"}},
		{"removed", map[string]any{}, map[string]any{"issuer": "a"}, []string{"p.issuer"}},
		{"each destination word", map[string]any{
			"url": 1, "redirect_uri": 1, "token_endpoint": 1, "target_authorization_server": 1, "idp_issuer": 1, "host": 1, "domain": 1, "id_jag_mode": 1,
		}, map[string]any{}, []string{
			"p.domain", "p.host", "p.id_jag_mode", "p.idp_issuer", "p.redirect_uri", "p.target_authorization_server", "p.token_endpoint", "p.url",
		}},
		{"not destinations", map[string]any{"scope": "b", "api_key": "b", "target_audience": "b", "header_name": "b", "urls_note": "b"},
			map[string]any{"scope": "a", "api_key": "a", "target_audience": "a", "header_name": "a", "urls_note": "a"}, nil},
		{"a word inside a key is not a destination", map[string]any{"urlish": "b"}, map[string]any{"urlish": "a"}, nil},
		{"nested", map[string]any{"oauth": map[string]any{"issuer": "b", "scope": "x"}}, map[string]any{"oauth": map[string]any{"issuer": "a", "scope": "y"}}, []string{"p.oauth.issuer"}},
		{"deep", map[string]any{"a": map[string]any{"b": map[string]any{"server": "2"}}}, map[string]any{"a": map[string]any{"b": map[string]any{"server": "1"}}}, []string{"p.a.b.server"}},
		{"a destination that is a map", map[string]any{"server": map[string]any{"x": 1}}, map[string]any{"server": map[string]any{"x": 2}}, []string{"p.server"}},
		{"number vs string", map[string]any{"url": "1"}, map[string]any{"url": 1}, []string{"p.url"}},
		{"both empty", nil, nil, nil},
		{"a section holding a destination removed", map[string]any{}, map[string]any{"oauth": map[string]any{"issuer": "a"}}, []string{"p.oauth.issuer"}},
		{"a section replaced by a plain value", map[string]any{"oauth": "none"}, map[string]any{"oauth": map[string]any{"token_url": "a"}}, []string{"p.oauth.token_url"}},
		{"a section holding a destination added", map[string]any{"proxy": map[string]any{"hostname": "b"}}, map[string]any{}, []string{"p.proxy.hostname"}},
		{"more address words", map[string]any{"hostname": 1, "address": 1, "port": 1}, map[string]any{}, []string{"p.address", "p.hostname", "p.port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := changedDestinations("p", tc.sent, tc.stored); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("changedDestinations = %q, want %q", got, tc.want)
			}
		})
	}
}
