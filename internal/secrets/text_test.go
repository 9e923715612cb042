package secrets

import "testing"

// Secrets the tests try to leak; each is distinctive so a substring search
// proves its absence.
const (
	testJWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImF1ZCI6Im1jcCJ9.QmFkU2lnbmF0dXJlQmFkU2lnbmF0dXJl"
	testJWE = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ"
	opaque  = "opaqueAccessToken0123456789abcdef"
)

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{testJWT, Placeholder},
		{"a " + testJWT + " b " + testJWT, "a " + Placeholder + " b " + Placeholder},
		{"\"" + testJWT + "\"", "\"" + Placeholder + "\""},
		{testJWE, Placeholder},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Placeholder}, // unsigned
		{"eyJhbGciOiJIUzI1NiJ9..c2ln", Placeholder},           // detached payload
		{"eyJ alone", "eyJ alone"},
		{"eyJhbGciOiJub25lIn0.onlytwo", "eyJhbGciOiJub25lIn0.onlytwo"},
		{"bearer " + opaque, "bearer " + Placeholder},
		{"BEARER\t" + opaque + "==", "BEARER\t" + Placeholder},
		{`Bearer error="invalid_token"`, `Bearer error="invalid_token"`},
		{"Bearer short", "Bearer short"},
		{"Bearer", "Bearer"},
		{"unbearable", "unbearable"},
		{"dial http://u:pw@h/mcp?api_key=S failed", "dial http://REDACTED@h/mcp?api_key=REDACTED failed"},
		{"http://h/mcp?t=" + testJWT, "http://h/mcp?t=REDACTED"},
		{"http://h/mcp", "http://h/mcp"},
	}
	for _, tc := range tests {
		if got := Scrub(tc.in); got != tc.want {
			t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsSecretKeyLogAttributes(t *testing.T) {
	tests := map[string]bool{
		"token": true, "access_token": true, "ID_TOKEN": true, "client_secret": true, "Password": true,
		"authorization": true, "Proxy-Authorization": true, "private_key": true, "privateKey": true,
		"private-key-file": true, "api_key": true, "X-Api-Key": true, "client_assertion": true, "set-cookie": true,
		"session_key": true,
		"user":        false, "backend": false, "subject": false, "client_id": false, "key_id": false, "method": false,
		// Addresses, not secrets: their values lose only URL secrets.
		"target_authorization_server": false, "token_endpoint": false, "TOKEN_URL": false, "authorization-server": false,
	}
	for key, want := range tests {
		if got := IsSecretKey(key); got != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func FuzzScrub(f *testing.F) {
	for _, s := range []string{testJWT, testJWE, "Bearer " + opaque, "eyJ.eyJ.", "bearer", "x eyJa.b.c.d.e.f.g", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Scrub(s)
		if again := Scrub(out); again != out {
			t.Errorf("not idempotent: %q -> %q -> %q", s, out, again)
		}
		for i := range len(out) {
			if end := jwtEnd(out, i); end > i {
				t.Fatalf("JWT-shaped %q left in %q", out[i:end], out)
			}
		}
	})
}

func TestForeign(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"invalid_grant", 40, "invalid_grant"},
		{`bad "quote" \ back`, 40, "bad quote  back"},
		{"line\nbreak\x1b[31m", 40, "linebreak[31m"},
		{"Zoë", 40, "Zo"},
		{"  padded  ", 40, "padded"},
		{"aaaaaaaaaaaa", 10, "aaaaaaaaaa..."},
	}
	for _, tc := range tests {
		if got := Foreign(tc.in, tc.n); got != tc.want {
			t.Errorf("Foreign(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
