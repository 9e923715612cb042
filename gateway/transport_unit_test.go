package gateway

import (
	"net/url"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// TestAcceptsUnit: the Accept check of POST (JSON and SSE) and GET (SSE).
// Media types match case-insensitively, with their parameters ignored,
// and through wildcards of the whole or the major type.
func TestAcceptsUnit(t *testing.T) {
	for _, tc := range []struct {
		header, mt string
		want       bool
	}{
		{"application/json", "application/json", true},
		{"application/json, text/event-stream", "text/event-stream", true},
		{"text/event-stream,application/json", "application/json", true},
		{"  application/json  ,  text/event-stream  ", "text/event-stream", true},
		{"Application/JSON", "application/json", true},
		{"TEXT/EVENT-STREAM", "text/event-stream", true},
		{"application/json; charset=utf-8", "application/json", true},
		{"application/json;q=0.5, text/event-stream;q=1", "text/event-stream", true},
		{"*/*", "application/json", true},
		{"*/*;q=0.1", "text/event-stream", true},
		{"application/*", "application/json", true},
		{"text/*", "text/event-stream", true},
		{"text/*", "application/json", false},
		{"application/*", "text/event-stream", false},
		{"", "application/json", false},
		{"application/json", "text/event-stream", false},
		{"text/html, application/xml", "application/json", false},
		// A longer or shorter type is another type.
		{"application/jsonx", "application/json", false},
		{"application/json-seq", "application/json", false},
		{"application", "application/json", false},
		{"*", "application/json", false},
		{"json", "application/json", false},
		// q-values are not weighed, except q=0, which says the client
		// cannot take that type (RFC 9110 §12.4.2): the answer would be one
		// it refused.
		{"application/json;q=0", "application/json", false},
		{"application/json; Q=0.000", "application/json", false},
		{"application/json;q=0, */*", "application/json", false},
		{"*/*;q=0, application/json", "application/json", true},
		{"text/*;q=0, text/event-stream", "text/event-stream", true},
		{"text/event-stream;q=0.001", "text/event-stream", true},
	} {
		if got := accepts(tc.header, tc.mt); got != tc.want {
			t.Errorf("accepts(%q, %q) = %v, want %v", tc.header, tc.mt, got, tc.want)
		}
	}
}

// TestMediaTypeUnit: the media type of a Content-Type, lower-cased without
// parameters; "" when it does not parse, so a malformed type never passes
// a check for application/json.
func TestMediaTypeUnit(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"application/json", "application/json"},
		{"Application/JSON", "application/json"},
		{"application/json; charset=utf-8", "application/json"},
		{"application/json;charset=UTF-8", "application/json"},
		{" application/json ", "application/json"},
		{"text/event-stream", "text/event-stream"},
		{"", ""},
		{"application/json, text/plain", ""},
		{"application/json; charset", ""},
		{"application/json; =utf-8", ""},
		{"application/", ""},
		{"/json", ""},
		{"application/json/x", ""},
	} {
		if got := mediaType(tc.in); got != tc.want {
			t.Errorf("mediaType(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// unitHostGateway is a Gateway with only what the Host and Origin checks
// read: the public URL, server.allowed_hosts and allowed_origins, and
// whether it listens on loopback.
func unitHostGateway(t *testing.T, public string, loopback bool, hosts, origins []string) *Gateway {
	t.Helper()
	u, err := url.Parse(public)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{publicURL: u, server: config.Server{PublicURL: public, AllowedHosts: hosts, AllowedOrigins: origins}}
	g.loopback.Store(loopback)
	return g
}

// TestHostAllowedUnit is the DNS-rebinding table: the public URL's host,
// allowed_hosts, and loopback names only when the gateway listens on
// loopback. Hosts compare case-insensitively and without their port.
func TestHostAllowedUnit(t *testing.T) {
	hosts := []string{"internal.example.com:8080", "[2001:db8::2]:443", "alias.example.com"}
	for _, tc := range []struct {
		name     string
		public   string
		loopback bool
		host     string
		want     bool
	}{
		{"public host", "https://gw.example.com", false, "gw.example.com", true},
		{"public host, case", "https://gw.example.com", false, "GW.Example.COM", true},
		{"public host with a port", "https://gw.example.com", false, "gw.example.com:443", true},
		{"public host, another port", "https://gw.example.com", false, "gw.example.com:8443", true},
		{"public host on a port", "https://gw.example.com:8443", false, "gw.example.com:8443", true},
		{"another host", "https://gw.example.com", false, "evil.example.com", false},
		{"suffix of a public host", "https://gw.example.com", false, "gw.example.com.evil.com", false},
		{"prefix of a public host", "https://gw.example.com", false, "example.com", false},
		{"empty", "https://gw.example.com", false, "", false},
		{"port only", "https://gw.example.com", false, ":443", false},
		{"allowed host, its port", "https://gw.example.com", false, "internal.example.com:8080", true},
		{"allowed host, no port", "https://gw.example.com", false, "internal.example.com", true},
		{"allowed host, case", "https://gw.example.com", false, "ALIAS.example.com:1", true},
		{"allowed IPv6 literal", "https://gw.example.com", false, "[2001:db8::2]", true},
		{"allowed IPv6 literal with port", "https://gw.example.com", false, "[2001:db8::2]:8080", true},
		{"other IPv6 literal", "https://gw.example.com", false, "[2001:db8::3]", false},
		{"public IPv6 literal", "http://[2001:db8::1]:8080", false, "[2001:db8::1]:8080", true},
		{"public IPv6 literal without port", "http://[2001:db8::1]:8080", false, "[2001:db8::1]", true},
		{"public IPv4 literal", "http://192.0.2.1:8080", false, "192.0.2.1:8080", true},
		// Loopback names only when the gateway itself listens on loopback.
		{"localhost, listening on loopback", "https://gw.example.com", true, "localhost:8080", true},
		{"LOCALHOST, listening on loopback", "https://gw.example.com", true, "LOCALHOST", true},
		{"127.0.0.1, listening on loopback", "https://gw.example.com", true, "127.0.0.1:8080", true},
		{"127.0.0.2, listening on loopback", "https://gw.example.com", true, "127.0.0.2", true},
		{"[::1], listening on loopback", "https://gw.example.com", true, "[::1]:8080", true},
		{"localhost, listening elsewhere", "https://gw.example.com", false, "localhost:8080", false},
		{"127.0.0.1, listening elsewhere", "https://gw.example.com", false, "127.0.0.1", false},
		{"[::1], listening elsewhere", "https://gw.example.com", false, "[::1]:8080", false},
		{"a name under localhost", "https://gw.example.com", true, "localhost.evil.com", false},
		{"a name ending in localhost", "https://gw.example.com", true, "evillocalhost", false},
		{"unspecified address", "https://gw.example.com", true, "0.0.0.0", false},
		{"IPv6 unspecified", "https://gw.example.com", true, "[::]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := unitHostGateway(t, tc.public, tc.loopback, hosts, nil)
			if got := g.hostAllowed(tc.host); got != tc.want {
				t.Fatalf("hostAllowed(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

// TestOriginAllowedUnit: a browser Origin must be listed in
// allowed_origins (or "*"), or name a host the gateway answers to.
func TestOriginAllowedUnit(t *testing.T) {
	listed := []string{"https://app.example.com/", "HTTP://Tool.Example.com:3000"}
	for _, tc := range []struct {
		name     string
		origins  []string
		loopback bool
		origin   string
		want     bool
	}{
		{"listed, trailing slash in config", listed, false, "https://app.example.com", true},
		{"listed, case", listed, false, "http://tool.example.com:3000", true},
		{"listed host, another port", listed, false, "http://tool.example.com:3001", false},
		{"listed host, another scheme", listed, false, "http://app.example.com", false},
		{"not listed", listed, false, "https://evil.example.com", false},
		{"the gateway's own origin", listed, false, "https://gw.example.com", true},
		{"the gateway's host, any scheme and port", listed, false, "http://gw.example.com:9", true},
		{"an allowed host's origin", listed, false, "https://internal.example.com", true},
		{"null (sandboxed frame, file:)", listed, false, "null", false},
		{"no host", listed, false, "https://", false},
		{"not a URL", listed, false, "://x", false},
		{"empty", listed, false, "", false},
		{"wildcard", []string{"*"}, false, "https://evil.example.com", true},
		{"wildcard takes null", []string{"*"}, false, "null", true},
		{"localhost on loopback", nil, true, "http://localhost:5173", true},
		{"localhost elsewhere", nil, false, "http://localhost:5173", false},
		{"IPv6 loopback on loopback", nil, true, "http://[::1]:5173", true},
		{"IPv6 loopback elsewhere", nil, false, "http://[::1]:5173", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := unitHostGateway(t, "https://gw.example.com", tc.loopback, []string{"internal.example.com"}, tc.origins)
			if got := g.originAllowed(tc.origin); got != tc.want {
				t.Fatalf("originAllowed(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
}
