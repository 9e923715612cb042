package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// Secrets the tests try to leak; each is distinctive so a substring search
// proves its absence.
const (
	testJWT    = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImF1ZCI6Im1jcCJ9.QmFkU2lnbmF0dXJlQmFkU2lnbmF0dXJl"
	testJWE    = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ"
	opaque     = "opaqueAccessToken0123456789abcdef"
	secretText = "s3cr3t-client-value"
)

type logValuer struct{}

func (logValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_secret", secretText), slog.String("client_id", "cid-1"))
}

// carrier has a JWT in a field the attribute walk does not open.
type carrier struct{ Token string }

func TestRedactingHandler(t *testing.T) {
	tests := []struct {
		name   string
		log    func(l *slog.Logger)
		leaks  []string // must not appear
		keeps  []string // must still appear
		format string
	}{
		{
			name: "sensitive keys in any case",
			log: func(l *slog.Logger) {
				l.Info("m", "Authorization", "Basic dXNlcjpwYXNz", "client_secret", secretText, "X-API-Key", "k-123456", "user", "alice")
			},
			leaks: []string{"dXNlcjpwYXNz", secretText, "k-123456"},
			keeps: []string{`"Authorization":"[REDACTED]"`, `"user":"alice"`},
		},
		{
			name:  "sensitive keys whatever the value's kind",
			log:   func(l *slog.Logger) { l.Info("m", "password", 12345678, "private_key", []byte("-----BEGIN")) },
			leaks: []string{"12345678", "LS0tLS1CRUdJTg"},
			keeps: []string{`"password":"[REDACTED]"`},
		},
		{
			name: "JWT in a string value and in the message",
			log: func(l *slog.Logger) {
				l.Warn("verify failed for "+testJWT, "detail", "got "+testJWT+" from client", "jwe", testJWE)
			},
			leaks: []string{testJWT, "eyJzdWIiOiJhbGljZSIsImF1ZCI6Im1jcCJ9", "XFBoMYUZodetZdvTiFvSkQ", "48V1_ALb6US04U3b"},
			keeps: []string{"verify failed for [REDACTED]", "got [REDACTED] from client"},
		},
		{
			name:  "bearer credential in free text",
			log:   func(l *slog.Logger) { l.Info("m", "header", "Bearer "+opaque) },
			leaks: []string{opaque},
			keeps: []string{"Bearer [REDACTED]"},
		},
		{
			name: "WWW-Authenticate challenge stays readable",
			log: func(l *slog.Logger) {
				l.Info("m", "challenge", `Bearer error="invalid_token", resource_metadata="https://gw/.well-known"`)
			},
			keeps: []string{`Bearer error=\"invalid_token\"`},
		},
		{
			name: "error values",
			log: func(l *slog.Logger) {
				l.Error("m", "err", fmt.Errorf("exchange: %w", errors.New("bad assertion "+testJWT)))
			},
			leaks: []string{testJWT},
			keeps: []string{`"err":"exchange: bad assertion [REDACTED]"`},
		},
		{
			name: "nested groups",
			log: func(l *slog.Logger) {
				l.Info("m", slog.Group("req", slog.String("path", "/employees"), slog.Group("headers", slog.String("Cookie", "sid=abc123xyz"), slog.String("x", testJWT))))
			},
			leaks: []string{"abc123xyz", testJWT},
			keeps: []string{`"path":"/employees"`, `"Cookie":"[REDACTED]"`},
		},
		{
			name:  "a group named like a secret",
			log:   func(l *slog.Logger) { l.Info("m", slog.Group("tokens", slog.String("id", "idtoken-value"))) },
			leaks: []string{"idtoken-value"},
		},
		{
			name:  "WithGroup named like a secret",
			log:   func(l *slog.Logger) { l.WithGroup("assertion").Info("m", "claims", "aud-and-more", "n", 3) },
			leaks: []string{"aud-and-more"},
			keeps: []string{`"assertion":{"claims":"[REDACTED]","n":"[REDACTED]"}`},
		},
		{
			name:  "WithAttrs",
			log:   func(l *slog.Logger) { l.With("api_key", "k-abcdef", "backend", "employees", "raw", testJWT).Info("m") },
			leaks: []string{"k-abcdef", testJWT},
			keeps: []string{`"backend":"employees"`},
		},
		{
			name:  "LogValuer is resolved first",
			log:   func(l *slog.Logger) { l.Info("m", "client", logValuer{}) },
			leaks: []string{secretText},
			keeps: []string{`"client_id":"cid-1"`},
		},
		{
			name: "http.Header, url.Values and maps",
			log: func(l *slog.Logger) {
				l.Info("m",
					"headers", http.Header{"Authorization": {"Bearer " + opaque}, "Accept": {"application/json"}, "X-Forwarded": {testJWT}},
					"form", url.Values{"client_assertion": {testJWT}, "grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}},
					"claims", map[string]any{"sub": "alice", "nested": map[string]string{"refresh_token": "rt-998877"}, "list": []any{testJWT}})
			},
			leaks: []string{opaque, testJWT, "rt-998877"},
			keeps: []string{`"Accept":["application/json"]`, `"sub":"alice"`, "jwt-bearer"},
		},
		{
			name:  "string slices",
			log:   func(l *slog.Logger) { l.Info("m", "values", []string{"ok", testJWT}) },
			leaks: []string{testJWT},
			keeps: []string{`["ok","[REDACTED]"]`},
		},
		{
			name:  "struct fields are scrubbed from the output",
			log:   func(l *slog.Logger) { l.Info("m", "carrier", carrier{Token: testJWT}) },
			leaks: []string{testJWT},
		},
		{
			name: "backend URL secrets in messages, strings and errors",
			log: func(l *slog.Logger) {
				l.Warn("backend failed: http://u:pw-hunter2@127.0.0.1:1/mcp?api_key=Q-SECRET",
					"url", "http://127.0.0.1:1/mcp?sig=SIG-SECRET",
					"err", &url.Error{Op: "Post", URL: "http://u:***@127.0.0.1:1/mcp?api_key=Q-SECRET", Err: errors.New("connection refused")})
			},
			leaks: []string{"pw-hunter2", "Q-SECRET", "SIG-SECRET"},
			keeps: []string{`"url":"http://127.0.0.1:1/mcp?sig=REDACTED"`, `Post \"http://REDACTED@127.0.0.1:1/mcp?api_key=REDACTED\": connection refused`},
		},
		{
			name:   "backend URL secrets in a struct field, text format",
			format: "text",
			log:    func(l *slog.Logger) { l.Info("m", "carrier", carrier{Token: "http://h/mcp?api_key=Q-SECRET"}) },
			leaks:  []string{"Q-SECRET"},
			keeps:  []string{"api_key=REDACTED"},
		},
		{
			name:   "text format",
			format: "text",
			log:    func(l *slog.Logger) { l.Info("m "+testJWT, "token", opaque, "carrier", carrier{Token: testJWT}) },
			leaks:  []string{testJWT, opaque},
			keeps:  []string{"token=[REDACTED]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLogger(config.Log{Level: "debug", Format: tc.format}, &buf)
			tc.log(l)
			out := buf.String()
			if out == "" {
				t.Fatal("nothing logged")
			}
			for _, s := range tc.leaks {
				if strings.Contains(out, s) {
					t.Errorf("output leaks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.keeps {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestRedactingHandlerAlone checks the handler without NewLogger's output
// scrubbing, so the attribute walk itself is proven.
func TestRedactingHandlerAlone(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewRedactingHandler(slog.NewJSONHandler(&buf, nil)))
	l.Info("login "+testJWT, "authorization", "Bearer "+opaque, "err", errors.New("x "+testJWT),
		"hdr", http.Header{"Cookie": {"sid=1"}}, slog.Group("g", "token", "t-1"))
	out := buf.String()
	for _, s := range []string{testJWT, opaque, "sid=1", "t-1"} {
		if strings.Contains(out, s) {
			t.Errorf("handler leaks %q:\n%s", s, out)
		}
	}
	if !l.Enabled(context.Background(), slog.LevelInfo) || l.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled does not follow the wrapped handler")
	}
}

func BenchmarkRedactingHandler(b *testing.B) {
	l := slog.New(NewRedactingHandler(slog.NewJSONHandler(discard{}, nil)))
	b.ReportAllocs()
	for b.Loop() {
		l.Info("request relayed", "request_id", "r-1", "backend", "employees", "method", "tools/call", "status", 200)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A failed span's status leaves the process (OTLP): a backend URL's
// userinfo and query values must not ride along in it.
func TestEndSpanRedactsURLSecrets(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		leaks []string
		keeps string
	}{
		{
			name:  "url.Error from the HTTP client",
			err:   &url.Error{Op: "Post", URL: "http://user:***@127.0.0.1:1/mcp?api_key=Q-SECRET", Err: errors.New("connection refused")},
			leaks: []string{"Q-SECRET", "user:"},
			keeps: "api_key=REDACTED",
		},
		{
			name:  "wrapped text",
			err:   fmt.Errorf("backend hr: %w", errors.New("GET https://u:pw-hunter2@hr.internal/mcp#k=F-SECRET failed")),
			leaks: []string{"pw-hunter2", "F-SECRET"},
			keeps: "https://REDACTED@hr.internal/mcp#REDACTED",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, tracer := newInMemoryTracing(t, 1)
			_, span := StartSpan(t.Context(), tracer, SpanUpstream)
			EndSpan(span, tt.err)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			d := spans[0].Status.Description
			for _, s := range tt.leaks {
				if strings.Contains(d, s) {
					t.Errorf("status description %q leaks %q", d, s)
				}
			}
			if !strings.Contains(d, tt.keeps) {
				t.Errorf("status description %q lacks %q", d, tt.keeps)
			}
		})
	}
}

// A URL under a key that names an address is shown, with only the secrets
// a URL can carry masked (internal/secrets); secrets beside it stay hidden.
func TestRedactingHandlerShowsAddresses(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(config.Log{}, &buf)
	log.Info("backend", "auth_config", map[string]any{
		"target_authorization_server": "https://svc:pw-S1@as.example.com/oauth2/aus1?k=Q-S2",
		"target_token_endpoint":       "https://as.example.com/oauth2/aus1/v1/token",
		"target_client_secret":        "CS-S3",
	})
	out := buf.String()
	for _, want := range []string{
		`"target_authorization_server":"https://REDACTED@as.example.com/oauth2/aus1?k=REDACTED"`,
		`"target_token_endpoint":"https://as.example.com/oauth2/aus1/v1/token"`,
		`"target_client_secret":"[REDACTED]"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
	for _, leak := range []string{"pw-S1", "Q-S2", "CS-S3"} {
		if strings.Contains(out, leak) {
			t.Errorf("log line leaks %s: %s", leak, out)
		}
	}
}
