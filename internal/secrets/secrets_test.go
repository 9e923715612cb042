package secrets

import (
	"maps"
	"reflect"
	"slices"
	"testing"
)

// Configuration keys: the union of what the printed configuration, the
// audit copy and the log handler used to hide, minus the keys that name
// where or which a secret is (files, paths, headers, addresses, ids).
func TestIsSecretKeyConfiguration(t *testing.T) {
	tests := map[string]bool{
		"api_key": true, "API_KEY_2": true, "client_secret": true, "target_client_secret": true,
		"password": true, "Passphrase": true, "refresh_token": true, "credentials": true,
		"Authorization": true, "session_cookie": true, "bearer": true, "private_key": true,
		"signature": true, "client_assertion": true,
		// Where or which a secret is: shown.
		"api_key_file": false, "private_key_path": false, "api_key_header": false, "header_name": false,
		"token_endpoint": false, "target_token_endpoint": false, "token_url": false, "jwks_uri": false,
		"target_authorization_server": false, "key_id": false,
		// Nothing secret about them.
		"username": false, "client_id": false, "audience": false, "target_audience": false, "scopes": false,
		"url": false, "timeout_seconds": false,
	}
	for key, want := range tests {
		if got := IsSecretKey(key); got != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestMask(t *testing.T) {
	if Mask("") != "" || Mask("s3cret") != Placeholder {
		t.Fatalf("Mask: %q %q", Mask(""), Mask("s3cret"))
	}
}

func TestLooksSecret(t *testing.T) {
	tests := map[string]bool{
		"-----BEGIN PRIVATE KEY-----\nMII": true, "  -----BEGIN CERTIFICATE-----": true,
		testJWT: true, "Bearer abc": true, "basic dXNlcjpwYXNz": true, "DPoP xyz": true,
		"Bearer": false, "Bearer ": false, "bearer-token-endpoint": false, "X-API-Key": false,
		"https://as.example.com/token": false, "eyJ alone": false, "": false,
	}
	for in, want := range tests {
		if got := LooksSecret(in); got != want {
			t.Errorf("LooksSecret(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTree(t *testing.T) {
	in := map[string]any{
		"api_key":                     "sk-1",
		"api_key_file":                "/run/secrets/key",
		"header_name":                 "X-API-Key",
		"empty_token":                 "",
		"null_secret":                 nil,
		"timeout_seconds":             5,
		"port_secret":                 8443,
		"static":                      testJWT,
		"extra_header":                "Bearer abc",
		"target_authorization_server": "https://svc:pw@as.example.com/oauth2?k=q",
		"scopes":                      []any{"a", "b"},
		"client_secrets":              []any{"s-1", "s-2"},
		"names":                       []string{"x", "Bearer " + opaque},
		"credentials":                 map[string]any{"bearer": map[string]any{"scheme": "Bearer", "token": "t-1"}},
		"headers":                     map[string]any{"Authorization": "a-1", "X-Trace": "on"},
	}
	want := map[string]any{
		"api_key":                     Placeholder,
		"api_key_file":                "/run/secrets/key",
		"header_name":                 "X-API-Key",
		"empty_token":                 "",
		"null_secret":                 nil,
		"timeout_seconds":             5,
		"port_secret":                 Placeholder,
		"static":                      Placeholder,
		"extra_header":                Placeholder,
		"target_authorization_server": "https://REDACTED@as.example.com/oauth2?k=REDACTED",
		"scopes":                      []any{"a", "b"},
		"client_secrets":              []any{Placeholder, Placeholder},
		"names":                       []string{"x", Placeholder},
		// Under a secret key every value is hidden; the shape stays.
		"credentials": map[string]any{"bearer": map[string]any{"scheme": Placeholder, "token": Placeholder}},
		"headers":     map[string]any{"Authorization": Placeholder, "X-Trace": "on"},
	}
	got := Tree(in)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Tree:\n got  %#v\n want %#v", got, want)
	}
	if in["api_key"] != "sk-1" || in["credentials"].(map[string]any)["bearer"].(map[string]any)["token"] != "t-1" {
		t.Fatal("Tree changed its argument")
	}
	if Tree(nil) != nil {
		t.Fatal("Tree(nil) != nil")
	}
}

// The store's DSN forms. Where the store's own copy hid a URL password as
// "xxxxx" and dropped the query whole, the one rule hides the whole
// userinfo and every query value and keeps the parameter names, as for
// every other URL.
func TestDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"file:mcpgw.db", "file:mcpgw.db"},
		{":memory:", ":memory:"},
		{"postgres://u:pw@h/db", "postgres://REDACTED@h/db"},
		{"postgres://u@h/db", "postgres://REDACTED@h/db"},
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://REDACTED@h:5432/db?sslmode=REDACTED"},
		{"postgres://u@h/db?password=pw&sslmode=disable", "postgres://REDACTED@h/db?password=REDACTED&sslmode=REDACTED"},
		{"host=h user=u password=pw dbname=d", "host=h user=u password=" + Placeholder + " dbname=d"},
		{"host=h password='p w' dbname=d", "host=h password=" + Placeholder + " dbname=d"},
		{"file:mcpgw.db?_pragma=x", "file:mcpgw.db?_pragma=REDACTED"},
		{"mcpgw.db?x=1", "mcpgw.db?x=REDACTED"},
	}
	for _, tt := range tests {
		if got := DSN(tt.in); got != tt.want {
			t.Errorf("DSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRestoreString(t *testing.T) {
	tests := []struct {
		name, sent, stored, want string
		problem                  bool
	}{
		{"placeholder keeps the stored secret", Placeholder, "cs-1", "cs-1", false},
		{"a new value replaces it", "cs-2", "cs-1", "cs-2", false},
		{"empty clears it", "", "cs-1", "", false},
		{"placeholder with nothing stored", Placeholder, "", Placeholder, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := RestoreString("agents.a.client_secret", tt.sent, tt.stored)
			if got != tt.want || (problem != "") != tt.problem {
				t.Fatalf("RestoreString = %q, %q", got, problem)
			}
			if tt.problem && problem != PlaceholderWithoutSecret("agents.a.client_secret") {
				t.Fatalf("problem %q", problem)
			}
		})
	}
}

// What a PUT that sends back a GET keeps: exactly the values the masking
// hid, wherever they sit; a changed value is taken as sent.
func TestRestore(t *testing.T) {
	stored := map[string]any{
		"api_key":     "sk-1",
		"header_name": "X-API-Key",
		"url":         "https://u:pw@as.example.com/t?k=q",
		"headers":     map[string]any{"Authorization": "a-1", "X-Trace": "on"},
		"keys":        []any{"k-1", "k-2"},
	}
	shown := Tree(stored)
	tests := []struct {
		name     string
		sent     map[string]any
		want     map[string]any
		kept     []string
		problems []string
	}{
		{
			name: "GET sent back keeps every stored secret",
			sent: Tree(stored),
			want: stored,
			kept: []string{"p.api_key", "p.headers.Authorization", "p.keys[0]", "p.keys[1]", "p.url"},
		},
		{
			name: "new values are taken as sent",
			sent: map[string]any{"api_key": "sk-2", "header_name": "X-Other", "url": "https://as.example.com/t",
				"headers": map[string]any{"Authorization": "a-2"}, "keys": []any{"k-3"}},
			want: map[string]any{"api_key": "sk-2", "header_name": "X-Other", "url": "https://as.example.com/t",
				"headers": map[string]any{"Authorization": "a-2"}, "keys": []any{"k-3"}},
		},
		{
			name:     "a placeholder where nothing is stored",
			sent:     map[string]any{"api_key": Placeholder, "client_secret": Placeholder},
			want:     map[string]any{"api_key": "sk-1", "client_secret": Placeholder},
			kept:     []string{"p.api_key"},
			problems: []string{PlaceholderWithoutSecret("p.client_secret")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]any{}
			var kept, problems []string
			for _, k := range slices.Sorted(maps.Keys(tt.sent)) {
				v, kk, pp := Restore("p."+k, tt.sent[k], shown[k], stored[k])
				got[k], kept, problems = v, append(kept, kk...), append(problems, pp...)
			}
			if !reflect.DeepEqual(got, tt.want) || !slices.Equal(kept, tt.kept) || !slices.Equal(problems, tt.problems) {
				t.Fatalf("Restore:\n got  %#v kept %q problems %q\n want %#v kept %q problems %q", got, kept, problems, tt.want, tt.kept, tt.problems)
			}
		})
	}
}
