package config

import (
	"strings"
	"testing"
)

// TestOrigins: server.allowed_origins and oauth.cors_origins take origins by
// one rule, and a browser's Origin matches them by one rule.
func TestOrigins(t *testing.T) {
	valid := []struct {
		in string
		ok bool
	}{
		{"https://app.example.com", true},
		{"https://app.example.com/", true}, // copied from an address bar
		{"http://localhost:6274", true},
		{"HTTPS://App.Example.com", true},
		{"https://app.example.com/path", false},
		{"https://app.example.com//", false},
		{"https://app.example.com?x=1", false},
		{"https://app.example.com#f", false},
		{"https://user@app.example.com", false},
		{"ftp://app.example.com", false},
		{"app.example.com", false},
		{"https:app.example.com", false},
		{"", false},
	}
	for _, tc := range valid {
		if got := isOrigin(tc.in); got != tc.ok {
			t.Errorf("isOrigin(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
	matches := []struct {
		configured, origin string
		ok                 bool
	}{
		{"*", "https://anything.example", true},
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com/", "https://app.example.com", true},
		{"HTTPS://App.Example.com", "https://app.example.com", true},
		{"https://app.example.com", "https://app.example.com:443", false},
		{"https://app.example.com", "http://app.example.com", false},
		{"https://app.example.com", "https://evil.example.com", false},
		{"https://app.example.com", "https://app.example.com.evil.example", false},
		{"https://app.example.com", "null", false},
	}
	for _, tc := range matches {
		if got := OriginMatches(tc.configured, tc.origin); got != tc.ok {
			t.Errorf("OriginMatches(%q, %q) = %v, want %v", tc.configured, tc.origin, got, tc.ok)
		}
	}
}

// TestOAuthReservedPaths: with oauth.enabled, a backend path at, above or
// below the authorization server's routes is refused by the rule every
// other pair of paths follows.
func TestOAuthReservedPaths(t *testing.T) {
	for _, tc := range []struct {
		path    string
		refused bool
	}{
		{"/oauth2", true},
		{"/oauth2/x", true},
		{"/oauth2/", true},
		{"/", true}, // above both
		{"/.well-known", true},
		{"/.well-known/x", true},
		{"/oauth2x", false},
		{"/.well-knownx", false}, // a prefix of the name is not the route
		{"/notes", false},
	} {
		c := &Config{OAuth: OAuth{Enabled: true}, Backends: map[string]Backend{"b": {Paths: []string{tc.path}}}}
		v := &validator{}
		c.validateOAuth(v)
		refused := false
		for _, err := range v.errs {
			if strings.HasPrefix(err.Error(), "backends.b.paths[0]:") {
				refused = true
			}
		}
		if refused != tc.refused {
			t.Errorf("path %q: refused %v, want %v (%v)", tc.path, refused, tc.refused, v.errs)
		}
	}
}
