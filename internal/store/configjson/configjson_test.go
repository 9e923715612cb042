package configjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

func ptr[T any](v T) *T { return &v }

// fullAgent and fullBackend set every field, so a field added to a config type
// later fails requireAllSet until the fixture (and so the round trip) covers it.
func fullAgent() config.Agent {
	return config.Agent{
		Name: "cursor", AgentID: "cursor-ide", ClientID: "0oa123", ClientSecret: "s3cret",
		Issuer: "https://acme.okta.com/oauth2/default", AllowClientlessTokens: true,
		ClientSecretFile: "/run/secrets/cursor",
		PrivateKey:       `{"kty":"RSA"}`, PrivateKeyFile: "/etc/mcpgw/cursor.pem",
		Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"employees"},
		Enabled: ptr(false), Description: "Cursor IDE",
	}
}

func fullBackend() config.Backend {
	return config.Backend{
		Name: "employees", URL: "https://hr.example.com/mcp", Paths: []string{"/employees"},
		AuthMethod: "pre-shared-key",
		AuthConfig: map[string]any{
			"header_name": "X-API-Key", "key": "k-123", "retries": 3, "ratio": 0.5,
			"nested": map[string]any{"list": []any{1, "two", 3.25, true, nil}},
		},
		Description: "HR", TimeoutSeconds: 45, Enabled: ptr(true), Labels: map[string]string{"team": "hr"}, ForwardSubpaths: true, ToolIntegrity: "enforce", FederatedPrefix: ptr(""),
	}
}

func requireAllSet(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Fatalf("fixture %s leaves field %s unset; set it so the round trip covers it", rv.Type(), rv.Type().Field(i).Name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		in       any
		out      func() any
		wantKeys []string
	}{
		{"agent", fullAgent(), func() any { return &config.Agent{} },
			[]string{"agent_id", "client_id", "issuer", "allow_clientless_tokens", "client_secret", "client_secret_file", "private_key", "private_key_file", "scopes", "backend_access", "enabled", "description"}},
		{"backend", fullBackend(), func() any { return &config.Backend{} },
			[]string{"url", "paths", "auth_method", "auth_config", "description", "timeout_seconds", "enabled", "labels", "forward_subpaths", "tool_integrity", "federated_prefix"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireAllSet(t, tc.in)
			data, err := Marshal(tc.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(data, &keys); err != nil {
				t.Fatalf("output is not a JSON object: %v", err)
			}
			if len(keys) != len(tc.wantKeys) {
				t.Errorf("keys = %d (%s), want %d", len(keys), data, len(tc.wantKeys))
			}
			for _, k := range tc.wantKeys {
				if _, ok := keys[k]; !ok {
					t.Errorf("key %q missing from %s", k, data)
				}
			}
			if _, ok := keys["name"]; ok {
				t.Errorf("name (koanf:\"-\") must not be encoded: %s", data)
			}
			out := tc.out()
			if err := Unmarshal(data, out); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			// Name is not part of the body; the store keeps it in its own column.
			reflect.ValueOf(out).Elem().FieldByName("Name").SetString(reflect.ValueOf(tc.in).FieldByName("Name").String())
			if got := reflect.ValueOf(out).Elem().Interface(); !reflect.DeepEqual(got, tc.in) {
				t.Errorf("round trip:\n got  %#v\n want %#v", got, tc.in)
			}
		})
	}
}

func TestZeroFieldsOmittedAndFalseKept(t *testing.T) {
	data, err := Marshal(config.Agent{Name: "a", Enabled: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"enabled":false}` {
		t.Fatalf("got %s", data)
	}
	var a config.Agent
	if err := Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	if a.Enabled == nil || *a.Enabled {
		t.Fatalf("enabled: false lost: %#v", a.Enabled)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		run     func() error
		wantSub string
	}{
		{"marshal non-struct", func() error { _, err := Marshal(42); return err }, "not a struct"},
		{"marshal nil pointer", func() error { _, err := Marshal((*config.Agent)(nil)); return err }, "nil"},
		{"unmarshal non-pointer", func() error { return Unmarshal([]byte(`{}`), config.Agent{}) }, "pointer"},
		{"unmarshal bad json", func() error { return Unmarshal([]byte(`{`), &config.Agent{}) }, "unmarshal"},
		{"unmarshal wrong field type", func() error { return Unmarshal([]byte(`{"scopes":"x"}`), &config.Agent{}) }, "field scopes"},
		{"unmarshal unknown key ignored", func() error { return Unmarshal([]byte(`{"future":1}`), &config.Agent{}) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.wantSub == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantSub)
			}
		})
	}
}

// An agent without scopes (the token's decide) and one with an empty list
// (none) are stored apart: a round trip must not turn one into the other.
func TestAbsentAndEmptyScopesStayApart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scopes []string
		json   string
	}{
		{"absent", nil, `{}`},
		{"empty", []string{}, `{"scopes":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Marshal(config.Agent{Scopes: tc.scopes})
			if err != nil || string(data) != tc.json {
				t.Fatalf("Marshal = %s, %v; want %s", data, err, tc.json)
			}
			var a config.Agent
			if err := Unmarshal(data, &a); err != nil {
				t.Fatal(err)
			}
			if (a.Scopes == nil) != (tc.scopes == nil) || len(a.Scopes) != 0 {
				t.Fatalf("scopes came back as %#v", a.Scopes)
			}
		})
	}
}
