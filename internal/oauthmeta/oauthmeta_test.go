package oauthmeta

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testidp"
)

// reply is what the document server answers on one path.
type reply struct {
	status int // 0: 200
	body   string
}

// docServer serves fixed documents on 127.0.0.1 and records the paths asked for.
type docServer struct {
	base string
	mu   sync.Mutex
	hits []string
}

// startDocs serves docs(base) and 404 elsewhere; docs gets the server's
// base URL so documents can name it.
func startDocs(t *testing.T, docs func(base string) map[string]reply) *docServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &docServer{base: "http://" + ln.Addr().String()}
	byPath := map[string]reply{}
	if docs != nil {
		byPath = docs(d.base)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.hits = append(d.hits, r.URL.EscapedPath())
		d.mu.Unlock()
		rep, ok := byPath[r.URL.EscapedPath()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rep.status != 0 {
			w.WriteHeader(rep.status)
		}
		_, _ = w.Write([]byte(rep.body))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return d
}

func (d *docServer) requested() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.hits)
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFetchTestIdP(t *testing.T) {
	idp, err := testidp.Start(t.Context(), testidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	tests := []struct {
		name     string
		issuer   string
		required []Field
		wantErr  string
	}{
		{name: "both endpoints", issuer: idp.Issuer(), required: []Field{JWKSURI, TokenEndpoint}},
		{name: "nothing required", issuer: idp.Issuer()},
		{name: "a required field this package does not read", issuer: idp.Issuer(), required: []Field{"userinfo_endpoint"}, wantErr: "userinfo_endpoint is not an endpoint this package reads"},
		{name: "issuer with a trailing slash is another issuer", issuer: idp.Issuer() + "/", wantErr: `names issuer "` + idp.Issuer() + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := Fetch(t.Context(), http.DefaultClient, tt.issuer, tt.required...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if md.Issuer != idp.Issuer() || md.JwksURI != idp.JWKSURL() || md.TokenEndpoint != idp.TokenEndpoint() {
				t.Errorf("Fetch = issuer %q jwks_uri %q token_endpoint %q, want %q %q %q",
					md.Issuer, md.JwksURI, md.TokenEndpoint, idp.Issuer(), idp.JWKSURL(), idp.TokenEndpoint())
			}
			if !slices.Contains(md.GrantTypesSupported, testidp.GrantTokenExchange) {
				t.Errorf("grant_types_supported = %q, want it to hold %q", md.GrantTypesSupported, testidp.GrantTokenExchange)
			}
		})
	}
}

func TestFetch(t *testing.T) {
	const tenant = "/tenant"
	inserted := WellKnownOAuth + tenant
	oidc := tenant + WellKnownOIDC
	appended := tenant + WellKnownOAuth
	good := func(issuer string) map[string]any {
		return map[string]any{"issuer": issuer, "jwks_uri": issuer + "/keys", "token_endpoint": issuer + "/token"}
	}
	with := func(m map[string]any, k string, v any) map[string]any {
		m[k] = v
		return m
	}
	tests := []struct {
		name     string
		docs     func(issuer string) map[string]reply
		required []Field
		// wantFrom is the path whose document Fetch returns; "" means an error.
		wantFrom      string
		wantErr       []string
		wantNotInErr  string
		wantRequested []string
	}{
		{
			name:          "path-inserted RFC 8414 form only",
			docs:          func(iss string) map[string]reply { return map[string]reply{inserted: {body: asJSON(t, good(iss))}} },
			required:      []Field{JWKSURI, TokenEndpoint},
			wantFrom:      inserted,
			wantRequested: []string{inserted},
		},
		{
			name:          "OIDC form only",
			docs:          func(iss string) map[string]reply { return map[string]reply{oidc: {body: asJSON(t, good(iss))}} },
			wantFrom:      oidc,
			wantRequested: []string{inserted, oidc},
		},
		{
			name:          "appended RFC 8414 form only (Okta custom authorization server)",
			docs:          func(iss string) map[string]reply { return map[string]reply{appended: {body: asJSON(t, good(iss))}} },
			wantFrom:      appended,
			wantRequested: []string{inserted, oidc, appended},
		},
		{
			name: "RFC 8414 wins over OIDC",
			docs: func(iss string) map[string]reply {
				return map[string]reply{
					inserted: {body: asJSON(t, good(iss))},
					oidc:     {body: asJSON(t, with(good(iss), "token_endpoint", iss+"/oidc-token"))},
				}
			},
			wantFrom:      inserted,
			wantRequested: []string{inserted},
		},
		{
			name: "a document without a required field does not hide the next",
			docs: func(iss string) map[string]reply {
				noKeys := good(iss)
				delete(noKeys, "jwks_uri")
				return map[string]reply{inserted: {body: asJSON(t, noKeys)}, oidc: {body: asJSON(t, good(iss))}}
			},
			required:      []Field{JWKSURI},
			wantFrom:      oidc,
			wantRequested: []string{inserted, oidc},
		},
		{
			name: "required field missing everywhere",
			docs: func(iss string) map[string]reply {
				noToken := good(iss)
				delete(noToken, "token_endpoint")
				return map[string]reply{inserted: {body: asJSON(t, noToken)}}
			},
			required: []Field{TokenEndpoint},
			wantErr:  []string{inserted + ": token_endpoint is missing", oidc + ": HTTP 404", appended + ": HTTP 404"},
		},
		{
			name: "issuer mismatch",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, good(strings.TrimSuffix(iss, tenant)+"/other"))}}
			},
			wantErr: []string{inserted + `: names issuer "`, `/other", not "`},
		},
		{
			name:    "issuer mismatch by a trailing slash",
			docs:    func(iss string) map[string]reply { return map[string]reply{oidc: {body: asJSON(t, good(iss+"/"))}} },
			wantErr: []string{"names issuer"},
		},
		{
			name: "oversize body",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, good(iss)) + strings.Repeat(" ", MaxDocumentBytes)}}
			},
			wantErr: []string{inserted + ": document exceeds 1048576 bytes"},
		},
		{
			name: "body of exactly the limit",
			docs: func(iss string) map[string]reply {
				doc := asJSON(t, good(iss))
				return map[string]reply{inserted: {body: doc + strings.Repeat(" ", MaxDocumentBytes-len(doc))}}
			},
			wantFrom: inserted,
		},
		{
			name:    "not JSON",
			docs:    func(string) map[string]reply { return map[string]reply{inserted: {body: "<html>sign in</html>"}} },
			wantErr: []string{inserted + ": not a JSON document"},
		},
		{
			name:    "JSON of the wrong shape",
			docs:    func(string) map[string]reply { return map[string]reply{inserted: {body: `["issuer"]`}} },
			wantErr: []string{inserted + ": not a JSON document"},
		},
		{
			name: "server error",
			docs: func(string) map[string]reply {
				return map[string]reply{inserted: {status: http.StatusInternalServerError}}
			},
			wantErr: []string{inserted + ": HTTP 500"},
		},
		{
			name: "jwks_uri not http(s)",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, with(good(iss), "jwks_uri", "file:///etc/keys"))}}
			},
			wantErr: []string{inserted + `: jwks_uri: "file:///etc/keys" is not an absolute http(s) URL`},
		},
		{
			name: "relative token_endpoint",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, with(good(iss), "token_endpoint", "/token"))}}
			},
			wantErr: []string{"token_endpoint:", "is not an absolute http(s) URL"},
		},
		{
			name: "an unrequired endpoint is checked too",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, with(good(iss), "registration_endpoint", "javascript:alert(1)"))}}
			},
			wantErr: []string{"registration_endpoint:"},
		},
		{
			name: "credentials in an endpoint are refused and not repeated",
			docs: func(iss string) map[string]reply {
				return map[string]reply{inserted: {body: asJSON(t, with(good(iss), "token_endpoint", "https://svc:s3cret@idp.example/token"))}}
			},
			wantErr:      []string{"token_endpoint:", "must not carry user info"},
			wantNotInErr: "s3cret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDocs(t, func(base string) map[string]reply { return tt.docs(base + tenant) })
			issuer := srv.base + tenant
			md, err := Fetch(t.Context(), http.DefaultClient, issuer, tt.required...)
			if tt.wantFrom == "" {
				if err == nil {
					t.Fatalf("Fetch = %+v, want an error", md)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Fetch error %q does not contain %q", err, want)
					}
				}
				if !strings.Contains(err.Error(), issuer) {
					t.Errorf("Fetch error %q does not name the issuer", err)
				}
				if tt.wantNotInErr != "" && strings.Contains(err.Error(), tt.wantNotInErr) {
					t.Errorf("Fetch error %q repeats %q", err, tt.wantNotInErr)
				}
				var uerr *url.Error
				if errors.As(err, &uerr) {
					t.Errorf("Fetch error %q claims a transport failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := tt.docs(issuer)[tt.wantFrom]
			var wantMD Metadata
			if err := json.Unmarshal([]byte(want.body), &wantMD); err != nil {
				t.Fatal(err)
			}
			if md.Issuer != issuer || md.JwksURI != wantMD.JwksURI || md.TokenEndpoint != wantMD.TokenEndpoint {
				t.Errorf("Fetch = %+v, want the document at %s", md, tt.wantFrom)
			}
			if tt.wantRequested != nil && !slices.Equal(srv.requested(), tt.wantRequested) {
				t.Errorf("requested %q, want %q", srv.requested(), tt.wantRequested)
			}
		})
	}
}

func TestFetchRefusesIdentifier(t *testing.T) {
	tests := []struct {
		issuer  string
		wantErr string
	}{
		{issuer: "", wantErr: "is not an absolute http(s) URL"},
		{issuer: "idp.example", wantErr: "is not an absolute http(s) URL"},
		{issuer: "ftp://idp.example", wantErr: "is not an absolute http(s) URL"},
		{issuer: "https://%zz", wantErr: "issuer is not a URL"},
		{issuer: "https://svc:s3cret@idp.example", wantErr: "must not carry user info"},
		{issuer: "https://idp.example?tenant=s3cret", wantErr: "must not carry user info, a query or a fragment"},
		{issuer: "https://idp.example#s3cret", wantErr: "must not carry user info, a query or a fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			_, err := Fetch(t.Context(), http.DefaultClient, tt.issuer)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Fetch(%q) error = %v, want one containing %q", tt.issuer, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Fetch error %q repeats the secret", err)
			}
			_, err = FetchResource(t.Context(), http.DefaultClient, tt.issuer)
			if err == nil || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("FetchResource(%q) error = %v, want one without the secret", tt.issuer, err)
			}
		})
	}
}

func TestFetchWithoutClient(t *testing.T) {
	if _, err := Fetch(t.Context(), nil, "https://idp.example"); err == nil || !strings.Contains(err.Error(), "no HTTP client") {
		t.Errorf("Fetch without a client: error = %v", err)
	}
}

func TestFetchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(t.Context(), http.DefaultClient, issuer)
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		t.Fatalf("Fetch error %v does not wrap a *url.Error", err)
	}
	if !strings.Contains(err.Error(), issuer+WellKnownOAuth) || !strings.Contains(err.Error(), issuer+WellKnownOIDC) {
		t.Errorf("Fetch error %q does not name both URLs tried", err)
	}
}

func TestFetchStopsWhenContextEnds(t *testing.T) {
	srv := startDocs(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Fetch(ctx, http.DefaultClient, srv.base+"/tenant")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch error = %v, want context.Canceled", err)
	}
	if n := strings.Count(err.Error(), "/.well-known/"); n != 1 {
		t.Errorf("Fetch tried %d URLs after its context ended, want 1: %v", n, err)
	}
}

func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer string
		want   []string
	}{
		{issuer: "https://idp.example", want: []string{
			"https://idp.example/.well-known/oauth-authorization-server",
			"https://idp.example/.well-known/openid-configuration",
		}},
		{issuer: "https://idp.example/", want: []string{
			"https://idp.example/.well-known/oauth-authorization-server",
			"https://idp.example/.well-known/openid-configuration",
		}},
		{issuer: "https://org.okta.com/oauth2/default", want: []string{
			"https://org.okta.com/.well-known/oauth-authorization-server/oauth2/default",
			"https://org.okta.com/oauth2/default/.well-known/openid-configuration",
			"https://org.okta.com/oauth2/default/.well-known/oauth-authorization-server",
		}},
		{issuer: "https://kc.example:8443/realms/a%2Fb/", want: []string{
			"https://kc.example:8443/.well-known/oauth-authorization-server/realms/a%2Fb",
			"https://kc.example:8443/realms/a%2Fb/.well-known/openid-configuration",
			"https://kc.example:8443/realms/a%2Fb/.well-known/oauth-authorization-server",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			got, err := metadataURLs(tt.issuer)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("metadataURLs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFetchResource(t *testing.T) {
	const path = "/mcp"
	atPath := WellKnownResource + path
	doc := func(resource string, servers ...string) reply {
		return reply{body: asJSON(t, map[string]any{"resource": resource, "authorization_servers": servers})}
	}
	tests := []struct {
		name          string
		resourcePath  string
		docs          func(resource, base string) map[string]reply
		wantErr       []string
		wantRequested []string
	}{
		{
			name:          "path form",
			resourcePath:  path,
			docs:          func(r, base string) map[string]reply { return map[string]reply{atPath: doc(r, base+"/as")} },
			wantRequested: []string{atPath},
		},
		{
			name:          "root form after the path form",
			resourcePath:  path,
			docs:          func(r, base string) map[string]reply { return map[string]reply{WellKnownResource: doc(r, base+"/as")} },
			wantRequested: []string{atPath, WellKnownResource},
		},
		{
			name:          "resource at the root",
			resourcePath:  "",
			docs:          func(r, base string) map[string]reply { return map[string]reply{WellKnownResource: doc(r, base+"/as")} },
			wantRequested: []string{WellKnownResource},
		},
		{
			name:         "a final slash is not a different resource",
			resourcePath: path,
			docs:         func(r, base string) map[string]reply { return map[string]reply{atPath: doc(r+"/", base+"/as")} },
		},
		{
			name:         "root document describing another resource",
			resourcePath: path,
			docs: func(_, base string) map[string]reply {
				return map[string]reply{WellKnownResource: doc(base+"/other", base+"/as")}
			},
			wantErr: []string{atPath + ": HTTP 404", WellKnownResource + `: describes resource "`},
		},
		{
			name:         "no authorization servers",
			resourcePath: path,
			docs:         func(r, _ string) map[string]reply { return map[string]reply{atPath: doc(r)} },
			wantErr:      []string{"lists no authorization_servers"},
		},
		{
			name:         "an authorization server that is not http(s)",
			resourcePath: path,
			docs: func(r, base string) map[string]reply {
				return map[string]reply{atPath: doc(r, base+"/as", "urn:example:as")}
			},
			wantErr: []string{`authorization_servers[1]: "urn:example:as" is not an absolute http(s) URL`},
		},
		{
			name:         "not JSON",
			resourcePath: path,
			docs:         func(string, string) map[string]reply { return map[string]reply{atPath: {body: "{"}} },
			wantErr:      []string{atPath + ": not a JSON document"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDocs(t, func(base string) map[string]reply { return tt.docs(base+tt.resourcePath, base) })
			resource := srv.base + tt.resourcePath
			md, err := FetchResource(t.Context(), http.DefaultClient, resource)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("FetchResource = %+v, want an error", md)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("FetchResource error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("FetchResource: %v", err)
			}
			if strings.TrimSuffix(md.Resource, "/") != resource || !slices.Equal(md.AuthorizationServers, []string{srv.base + "/as"}) {
				t.Errorf("FetchResource = %+v", md)
			}
			if tt.wantRequested != nil && !slices.Equal(srv.requested(), tt.wantRequested) {
				t.Errorf("requested %q, want %q", srv.requested(), tt.wantRequested)
			}
		})
	}
}

// TestFetchResourceAt: the document a challenge names is read, and only if
// it describes the resource the client asked for is it used.
func TestFetchResourceAt(t *testing.T) {
	const named = "/meta/named"
	tests := []struct {
		name     string
		describe func(base string) string // the resource the named document describes
		url      func(base string) string // the challenge's resource_metadata
		wantErr  string
	}{
		{name: "describes the resource", describe: func(b string) string { return b + "/mcp" }, url: func(b string) string { return b + named }},
		{name: "describes another resource", describe: func(b string) string { return b + "/other" }, url: func(b string) string { return b + named },
			wantErr: `describes resource "`},
		{name: "not http(s)", describe: func(b string) string { return b + "/mcp" }, url: func(string) string { return "file:///etc/passwd" },
			wantErr: "resource_metadata:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDocs(t, func(base string) map[string]reply {
				return map[string]reply{named: {body: asJSON(t, map[string]any{"resource": tt.describe(base), "authorization_servers": []string{base + "/as"}})}}
			})
			md, err := FetchResourceAt(t.Context(), http.DefaultClient, srv.base+"/mcp", tt.url(srv.base))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FetchResourceAt = %+v, %v; want an error with %q", md, err, tt.wantErr)
				}
				return
			}
			if err != nil || md.Resource != srv.base+"/mcp" {
				t.Fatalf("FetchResourceAt = %+v, %v", md, err)
			}
		})
	}
}
