package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

func TestAgentRedacted(t *testing.T) {
	enabled := true
	in := Agent{
		Name: "cursor", AgentID: "cursor-id", ClientID: "0oa1", ClientSecret: "cs-9f2",
		ClientSecretFile: "/run/secrets/cs", PrivateKey: "-----BEGIN PRIVATE KEY-----\nMIIpk\n-----END PRIVATE KEY-----",
		PrivateKeyFile: "/etc/mcpgw/cursor.pem", Scopes: []string{"mcp:read"}, BackendAccess: []string{"hr"},
		Enabled: &enabled, Description: "IDE",
	}
	orig := in
	orig.Scopes = append([]string(nil), in.Scopes...)
	got := in.Redacted()

	want := in
	want.ClientSecret, want.PrivateKey = secrets.Placeholder, secrets.Placeholder
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Agent.Redacted:\n got  %+v\n want %+v", got, want)
	}
	// The caller's value is untouched, and the copy shares nothing mutable.
	if in.ClientSecret != "cs-9f2" || !reflect.DeepEqual(in.Scopes, orig.Scopes) {
		t.Error("Agent.Redacted changed its argument")
	}
	got.Scopes[0] = "changed"
	*got.Enabled = false
	if in.Scopes[0] != "mcp:read" || !*in.Enabled {
		t.Error("Agent.Redacted's copy aliases the argument's slices or pointers")
	}
	// Unset secrets stay visibly unset.
	if e := (Agent{Name: "x"}).Redacted(); e.ClientSecret != "" || e.PrivateKey != "" {
		t.Errorf("empty secrets became %q / %q", e.ClientSecret, e.PrivateKey)
	}
}

func TestBackendRedacted(t *testing.T) {
	leaks := []string{"sk-live-1", "hunter2", "tok-3", "pw-4", "cookie-5", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "Bearer abc", "qtok-6", "listsecret-7", "nested-8"}
	in := Backend{
		Name: "hr", URL: "https://svc:hunter2@hr.example.com/mcp?api_key=qtok-6&region=eu",
		Paths: []string{"/hr"}, AuthMethod: "service-account",
		AuthConfig: map[string]any{
			"api_key":                     "sk-live-1",
			"header_name":                 "X-API-Key",
			"api_key_file":                "/run/secrets/key",
			"token_endpoint":              "https://idp.example.com/token",
			"target_authorization_server": "https://as.example.com/oauth2/aus1",
			"token_url":                   "https://idp.example.com/oauth?client_token=qtok-6",
			"access_token":                "tok-3",
			"Password":                    "pw-4",
			"session_cookie":              "cookie-5",
			"audience":                    "api://hr",
			"static":                      "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
			"extra_header":                "Bearer abc",
			"scopes":                      []any{"hr.read"},
			"client_secrets":              []any{"listsecret-7"},
			"timeout_seconds":             5,
			"empty_token":                 "",
			"headers": map[string]any{
				"Authorization": "nested-8",
				"X-Trace":       "on",
			},
		},
		Labels: map[string]string{"team": "hr"},
	}
	got := in.Redacted()

	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range leaks {
		if strings.Contains(string(b), s) {
			t.Errorf("redacted backend still holds %q: %s", s, b)
		}
	}
	keep := map[string]any{
		"header_name":                 "X-API-Key",
		"api_key_file":                "/run/secrets/key",
		"token_endpoint":              "https://idp.example.com/token",
		"target_authorization_server": "https://as.example.com/oauth2/aus1",
		"audience":                    "api://hr",
		"scopes":                      []any{"hr.read"},
		"timeout_seconds":             5,
		"empty_token":                 "",
	}
	for k, v := range keep {
		if !reflect.DeepEqual(got.AuthConfig[k], v) {
			t.Errorf("auth_config.%s = %#v, want %#v kept", k, got.AuthConfig[k], v)
		}
	}
	for _, k := range []string{"api_key", "access_token", "Password", "session_cookie", "static", "extra_header"} {
		if got.AuthConfig[k] != secrets.Placeholder {
			t.Errorf("auth_config.%s = %#v, want %q", k, got.AuthConfig[k], secrets.Placeholder)
		}
	}
	if h := got.AuthConfig["headers"].(map[string]any); h["Authorization"] != secrets.Placeholder || h["X-Trace"] != "on" {
		t.Errorf("nested headers = %#v", h)
	}
	// The whole userinfo and every query value: the stricter of the rules
	// the audit copy and the printed configuration used to follow.
	if want := "https://REDACTED@hr.example.com/mcp?api_key=REDACTED&region=REDACTED"; got.URL != want {
		t.Errorf("URL = %q, want %q", got.URL, want)
	}
	if got.AuthConfig["token_url"] != "https://idp.example.com/oauth?client_token=REDACTED" {
		t.Errorf("token_url = %q", got.AuthConfig["token_url"])
	}
	// Input untouched.
	if in.AuthConfig["api_key"] != "sk-live-1" || in.AuthConfig["headers"].(map[string]any)["Authorization"] != "nested-8" || !strings.Contains(in.URL, "hunter2") {
		t.Error("Backend.Redacted changed its argument")
	}
	if (Backend{}).Redacted().AuthConfig != nil {
		t.Error("nil auth_config became non-nil")
	}
}
