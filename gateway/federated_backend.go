package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// fanOut sends one request to each backend's path at once; answers are in
// the order of backends.
func (g *Gateway) fanOut(fc *fedCall, backends []string, req func(backend string) (method string, body []byte)) []subAnswer {
	out := make([]subAnswer, len(backends))
	var wg sync.WaitGroup
	for i, b := range backends {
		method, body := req(b)
		wg.Go(func() { out[i] = g.viaBackend(fc, b, method, body) })
	}
	wg.Wait()
	return out
}

// subAnswer is what a backend's path answered to one request of the
// federated endpoint.
type subAnswer struct {
	backend     string
	status      int
	contentType string
	header      http.Header
	body        []byte
	// sessionID is the Mcp-Session-Id the backend's path handed out (the
	// gateway's sealed id for that backend).
	sessionID string
}

// federatedHeaders are the client headers a backend's path gets from a
// federated request: who calls, through which agent, from where, in which
// revision and trace. Never the client's Mcp-Session-Id (the backend's own
// goes instead) nor its hint headers (they name the prefixed tool).
var federatedHeaders = []string{
	fiber.HeaderAuthorization, "X-Agent-ID", "X-MCP-Agent", fiber.HeaderOrigin, fiber.HeaderUserAgent,
	mcpgo.HeaderProtocolVersion, "Traceparent", "Tracestate", "Baggage",
}

// viaBackend sends one request to backend's own path in process and
// returns its answer whole: handleMCP serves it as it serves a client
// there. A streamed answer (SSE) is read to its end, bounded as a JSON
// reply is.
func (g *Gateway) viaBackend(fc *fedCall, backend, method string, body []byte) subAnswer {
	s := g.openViaBackend(fc, backend, method, body)
	defer s.Close()
	if s.stream != nil {
		b, err := readAllLimit(s.stream, maxJSONResponse)
		if err != nil {
			g.log.Warn("federated: backend answer cut", "request_id", fc.requestID, "backend", backend, "err", err)
		}
		s.body = b
	}
	return s.subAnswer
}

// subStream is a backend path's answer as it is produced: status and
// headers at once, the body (stream) as the backend path writes it. Close
// ends it early: the backend path's relay then stops and releases its
// upstream connection.
type subStream struct {
	subAnswer
	// stream is the body when the backend path answered with a body
	// stream writer (an SSE relay); nil when body holds the whole answer.
	stream io.ReadCloser
	conn   *subConn
	once   sync.Once
}

// Close ends the answer: the pipe fasthttp put between the backend path's
// stream writer and stream is closed, so the writer's next write fails,
// and the subConn says the client is gone, so a writer waiting for the
// backend (stream.go) stops at once rather than at its next ping.
func (s *subStream) Close() {
	s.once.Do(func() {
		s.conn.leave()
		if s.stream != nil {
			_ = s.stream.Close()
		}
	})
}

// openViaBackend sends one request to backend's own path in process and
// returns its answer as it is produced. The caller must Close it.
//
// fasthttp runs a body stream writer (SetBodyStreamWriter) in a goroutine
// of its own behind an in-memory pipe (fasthttputil.PipeConns, four
// writes buffered): Response.BodyStream is the pipe's reading end, so
// each event arrives as soon as the writer flushes it.
func (g *Gateway) openViaBackend(fc *fedCall, backend, method string, body []byte) *subStream {
	conn := &subConn{local: fc.from.local, remote: fc.from.remote, gone: make(chan struct{})}
	s := &subStream{subAnswer: subAnswer{backend: backend}, conn: conn}
	r := g.topo.Load().backends[backend]
	if r == nil {
		s.status, s.contentType = fiber.StatusNotFound, fiber.MIMEApplicationJSON
		s.body = mcp.ErrorResponse(mcpgo.NewRequestId(nil), mcp.CodeBackend, "backend "+backend+" no longer exists", nil)
		return s
	}
	fctx := &fasthttp.RequestCtx{}
	fctx.Init2(conn, quietFasthttp{}, false)
	req := &fctx.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(r.prefix)
	req.Header.SetHost(fc.from.host)
	for _, h := range fc.from.headers {
		req.Header.Set(h[0], h[1])
	}
	accept := "application/json, text/event-stream"
	if method == http.MethodGet {
		accept = "text/event-stream"
	}
	req.Header.Set(fiber.HeaderAccept, accept)
	if body != nil {
		req.Header.SetContentType(fiber.MIMEApplicationJSON)
		req.SetBody(body)
	}
	if sid := fc.sessions[backend]; sid != "" {
		req.Header.Set(mcpgo.HeaderSessionID, sid)
	}
	// The backend request's log line and audit records name the federated
	// request they were made for, when the id still fits.
	req.Header.Set(fiber.HeaderXRequestID, fc.requestID+":"+backend)
	fctx.SetUserValue(subRequestKey{}, true) // charged once, on the federated path
	sub := g.app.AcquireCtx(fctx)
	sub.SetUserContext(fc.from.ctx)
	setRequestID(sub)
	if err := g.handleMCP(sub); err != nil {
		_ = g.errorHandler(sub, err)
	}
	// The writer, if any, must not touch the Fiber context (stream.go):
	// it is released now, the fasthttp one is this function's own.
	g.app.ReleaseCtx(sub)
	resp := &fctx.Response
	if resp.IsBodyStream() {
		if rc, ok := resp.BodyStream().(io.ReadCloser); ok {
			s.stream = rc
		} else {
			s.stream = io.NopCloser(resp.BodyStream())
		}
	} else {
		s.body = bytes.Clone(resp.Body())
	}
	s.status = resp.StatusCode()
	s.contentType = string(resp.Header.ContentType())
	s.header = http.Header{}
	for _, h := range []string{fiber.HeaderWWWAuthenticate, fiber.HeaderRetryAfter} {
		if v := resp.Header.Peek(h); len(v) > 0 {
			s.header.Set(h, string(v))
		}
	}
	s.sessionID = string(resp.Header.Peek(mcpgo.HeaderSessionID))
	return s
}

// result decodes the result of the response to the request idKey, or says
// why there is none (the backend's error, a refusal, no such response).
func (a subAnswer) result(idKey string, into any) error {
	msgs, err := a.messages()
	if err != nil {
		return fmt.Errorf("HTTP %d: %w", a.status, err)
	}
	for i := range msgs {
		if msgs[i].Kind != mcp.KindResponse || msgs[i].IDKey != idKey {
			continue
		}
		var reply struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msgs[i].Encode(), &reply); err != nil {
			return err
		}
		if reply.Error != nil {
			return fmt.Errorf("HTTP %d: JSON-RPC error %d: %s", a.status, reply.Error.Code, reply.Error.Message)
		}
		return json.Unmarshal(reply.Result, into)
	}
	return fmt.Errorf("HTTP %d: no response to the request (%s)", a.status, excerpt(a.body))
}

// messages reads the answer's JSON-RPC messages: the body, or the data of
// each SSE event.
func (a subAnswer) messages() ([]mcp.Message, error) {
	if mediaType(a.contentType) != "text/event-stream" {
		msgs, _, err := mcp.ParseReply(a.body)
		return msgs, err
	}
	var out []mcp.Message
	er := mcp.NewEventReader(bytes.NewReader(a.body))
	for {
		ev, err := er.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !ev.HasData || len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		msgs, _, err := mcp.ParseReply(ev.Data)
		if err != nil {
			return out, err
		}
		out = append(out, msgs...)
	}
}

// subConn stands in for the client's connection in a backend-path request
// made in process: it carries the client's addresses, a write deadline
// (stream.go sets one per chunk) has nothing to bound, and Gone says when
// the federated side stopped reading (subStream.Close).
type subConn struct {
	local, remote net.Addr
	gone          chan struct{}
	once          sync.Once
}

// Gone is closed when the federated side no longer reads the answer.
func (s *subConn) Gone() <-chan struct{} { return s.gone }

func (s *subConn) leave() {
	s.once.Do(func() {
		if s.gone != nil {
			close(s.gone)
		}
	})
}

func (s *subConn) Read([]byte) (int, error) { return 0, io.EOF }
func (s *subConn) Write([]byte) (int, error) {
	return 0, errors.New("in-process request: no connection")
}
func (s *subConn) Close() error                     { return nil }
func (s *subConn) LocalAddr() net.Addr              { return cmp.Or[net.Addr](s.local, &net.TCPAddr{}) }
func (s *subConn) RemoteAddr() net.Addr             { return cmp.Or[net.Addr](s.remote, &net.TCPAddr{}) }
func (s *subConn) SetDeadline(time.Time) error      { return nil }
func (s *subConn) SetReadDeadline(time.Time) error  { return nil }
func (s *subConn) SetWriteDeadline(time.Time) error { return nil }

type quietFasthttp struct{}

func (quietFasthttp) Printf(string, ...any) {}
