package exchange_test

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/mcpgw/mcpgw/internal/upstream"
)

// A backend that refuses every token used to cost a whole cross-app
// exchange (two token requests at the IdP and the resource AS) per call,
// and one more for the retry: 21 calls made 22 exchanges. The client now
// remembers the refusal of a fresh token per credential key and fails fast.
func TestRefusingBackendDoesNotCostAnExchangePerCall(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	f.backendLog.refuseAll()
	client := upstream.NewClient() // one client, as the gateway has
	alice, bob := f.caller(t, "alice"), f.caller(t, "bob")
	call := func(c upstream.Caller) (status int, err error) {
		resp, err := client.Send(t.Context(), inj, c, upstream.Request{
			Method: http.MethodPost, URL: f.backend.URL, Body: []byte(getEmployee),
			Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}},
		})
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, st := range []struct {
		name   string
		caller upstream.Caller
		calls  int
		// wantStatus 0: every call fails fast with a refusal.
		wantStatus int
		// Totals after the step.
		wantIdP, wantRAS, wantBackend int
	}{
		{name: "first call: refused, retried once with a fresh token", caller: alice, calls: 1, wantStatus: 401,
			wantIdP: 2, wantRAS: 2, wantBackend: 2},
		{name: "the next 20 fail fast, no exchange, nothing sent", caller: alice, calls: 20,
			wantIdP: 2, wantRAS: 2, wantBackend: 2},
		{name: "another user's token is tried", caller: bob, calls: 1, wantStatus: 401,
			wantIdP: 4, wantRAS: 4, wantBackend: 4},
	} {
		for i := range st.calls {
			status, err := call(st.caller)
			if st.wantStatus != 0 {
				if err != nil || status != st.wantStatus {
					t.Fatalf("%s: call %d: %d %v, want the backend's %d passed on", st.name, i, status, err, st.wantStatus)
				}
				continue
			}
			ce := credentialError(t, err)
			var re *upstream.RefusedError
			if ce.Backend != "hr" || !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
				t.Fatalf("%s: call %d: %v, want a refusal of backend hr", st.name, i, err)
			}
		}
		idp, ras := f.exchanges()
		tokens, _ := f.backendLog.seen()
		if idp != int64(st.wantIdP) || ras != int64(st.wantRAS) || len(tokens) != st.wantBackend {
			t.Errorf("%s: IdP %d, resource AS %d token requests, backend %d requests; want %d, %d, %d",
				st.name, idp, ras, len(tokens), st.wantIdP, st.wantRAS, st.wantBackend)
		}
	}
}
