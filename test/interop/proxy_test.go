package interop

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// serveLoopback serves handler on a free 127.0.0.1 port until the test ends and
// returns its base URL. Close, not Shutdown, ends it: a proxied event stream
// that is still open must not hold the test up.
func serveLoopback(t *testing.T, handler http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve %s: %v", ln.Addr(), err)
		}
	})
	return "http://" + ln.Addr().String()
}

// startHeaderProxy serves a reverse proxy to target (scheme and host) that adds
// headers to every request, for a client that cannot send them (the conformance
// runner). Host and Origin pass through unchanged, so a DNS-rebinding check
// behind it still sees what the client sent; events are flushed as they arrive.
func startHeaderProxy(t *testing.T, target string, headers map[string]string) string {
	t.Helper()
	upstream, err := url.Parse(target)
	if err != nil {
		t.Fatalf("parse %s: %v", target, err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: upstream.Scheme, Host: upstream.Host})
			r.Out.Host = r.In.Host // SetURL would set the upstream's
			for name, value := range headers {
				r.Out.Header.Set(name, value)
			}
		},
		FlushInterval: -1,
		ErrorHandler:  proxyError,
	}
	return serveLoopback(t, fullDuplex(proxy))
}

// fullDuplex lets a proxy write the response while it is still relaying the
// request body. Without it Go's HTTP/1 server shuts the request body as soon as
// the response starts; an MCP server that opens its event stream before the
// transport has read the body's EOF then makes the transport fail the request,
// close the upstream connection and cut the stream before the result: about
// one conformance run in three lost a scenario to a 60 s client timeout
// ("ReverseProxy read error during body copy: use of closed network connection").
func fullDuplex(proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			http.Error(w, "test proxy: full duplex: "+err.Error(), http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// proxyError answers 502 naming the failure, except when the client went away
// (a stream it closed), which is no error of the path being tested.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	http.Error(w, "test proxy: "+err.Error(), http.StatusBadGateway)
}
