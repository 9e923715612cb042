package secrets

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"http://127.0.0.1:9/mcp", "http://127.0.0.1:9/mcp"},
		{"http://user:pw@127.0.0.1:9/mcp", "http://REDACTED@127.0.0.1:9/mcp"},
		{"https://TOKEN@host/mcp", "https://REDACTED@host/mcp"},
		{"http://h/mcp?api_key=SECRET", "http://h/mcp?api_key=REDACTED"},
		{"http://h/mcp?a=1&sig=SECRET&empty=&flag", "http://h/mcp?a=REDACTED&sig=REDACTED&empty=&REDACTED"},
		{"http://h/mcp?SECRET", "http://h/mcp?REDACTED"},
		{"http://h/mcp#access_token=SECRET", "http://h/mcp#REDACTED"},
		{"http://u:p@h?k=v#f", "http://REDACTED@h?k=REDACTED#REDACTED"},
		{"postgres://mcpgw:pw@db:5432/mcpgw?sslmode=require", "postgres://REDACTED@db:5432/mcpgw?sslmode=REDACTED"},
		{"http://h/a@b", "http://h/a@b"}, // "@" in a path is not userinfo
		{"not a url", "not a url"},
		{"/relative?x=1", "/relative?x=1"},
		// Where the audit copy kept the user name and the values of query
		// parameters with innocent names, the stricter rule wins.
		{"https://user@example.com/", "https://REDACTED@example.com/"},
		{"https://example.com/?access_token=abc&x=1", "https://example.com/?access_token=REDACTED&x=REDACTED"},
		// Unparsable and holding an "@": fails closed.
		{"http://[::1%zz]:80/a@b", Placeholder},
		{"", ""},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name, in string
		leaks    []string
		want     string
	}{
		{
			name: "Go url.Error as net/http prints it",
			in:   `backend gone is unreachable: Post "http://user:***@127.0.0.1:1/mcp?api_key=SECRET": dial tcp 127.0.0.1:1: connect: connection refused`,
			want: `backend gone is unreachable: Post "http://REDACTED@127.0.0.1:1/mcp?api_key=REDACTED": dial tcp 127.0.0.1:1: connect: connection refused`,
		},
		{
			name: "two URLs, one clean",
			in:   "from https://a.example/x to https://b.example/y?t=SECRET done",
			want: "from https://a.example/x to https://b.example/y?t=REDACTED done",
		},
		{
			name: "text-format log escaping ends the URL at the backslash",
			in:   `err="Post \"http://u:pw@h/mcp?k=SECRET\": refused"`,
			want: `err="Post \"http://REDACTED@h/mcp?k=REDACTED\": refused"`,
		},
		{
			name: "a URL nested in a query value goes with it",
			in:   "see http://h/cb?next=http://x/?k=SECRET",
			want: "see http://h/cb?next=REDACTED",
		},
		{
			name: "no scheme before ://",
			in:   "odd ://user:pw@h?k=SECRET",
			want: "odd ://user:pw@h?k=SECRET",
		},
		{name: "nothing to hide", in: "plain text http://h/mcp", want: "plain text http://h/mcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// The client's own error for an unreachable backend with secrets in its URL:
// net/http hides the password itself but prints the query whole.
func TestErrorFromHTTPClient(t *testing.T) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://user:pw-SECRET@127.0.0.1:1/mcp?api_key=Q-SECRET", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, doErr := http.DefaultClient.Do(req)
	if doErr == nil {
		t.Fatal("a request to port 1 succeeded")
	}
	if !strings.Contains(doErr.Error(), "Q-SECRET") {
		t.Fatalf("net/http no longer prints the query (%v): this test proves nothing", doErr)
	}
	red := Error(doErr)
	if strings.Contains(red.Error(), "SECRET") {
		t.Fatalf("Error() = %q still shows a secret", red)
	}
	var ue *url.Error
	if !errors.As(red, &ue) {
		t.Fatal("the redacted error no longer unwraps to the *url.Error")
	}
	if Error(nil) != nil {
		t.Fatal("Error(nil) != nil")
	}
	plain := errors.New("nothing here")
	if Error(plain) != plain {
		t.Fatal("an error with nothing to hide was wrapped")
	}
}

func TestTextDoesNotAllocateWhenClean(t *testing.T) {
	s := "backend notes answered 200 from http://127.0.0.1:9/mcp in 3ms"
	if n := testing.AllocsPerRun(100, func() { _ = Text(s) }); n != 0 {
		t.Fatalf("Text allocates %v times on clean text", n)
	}
}
