package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// Streams through the federated endpoint (issue 19): a backend's answer is
// relayed event by event as its path produces it, server requests
// (elicitation, sampling, roots, the confirm obligation's own question)
// reach the client with ids that say which backend asked, the client's
// answers go back to that backend's path, and one GET stream merges every
// session backend's GET stream.
//
// Nothing here decides: every message still goes through its backend's
// path in process (openViaBackend), which decides, filters and audits it.

// fedIDSeparator joins a backend's name and a server request's original id
// (its canonical JSON) into the id the client sees: ":" is in no backend
// name (config's validName), so the first one ends the name.
const fedIDSeparator = ":"

// fedIDOut is the id a backend's server request carries on the federated
// endpoint: the backend, the separator, the original id's canonical JSON
// (idKey), so 7 and "7" stay distinct and both read back exactly.
func fedIDOut(backend, idKey string) string {
	return backend + fedIDSeparator + idKey
}

// fedIDIn reads an id the client answers with back into the backend of the
// session that asked and the original id. Anything else (a number, no
// separator, an unknown backend, JSON that is not one canonical id) is
// refused: an answer is never routed on a guess.
func (fc *fedCall) fedIDIn(id mcpgo.RequestId) (string, mcpgo.RequestId, error) {
	shown, ok := id.Value().(string)
	if !ok {
		return "", mcpgo.RequestId{}, fmt.Errorf("id %s is not one the federated endpoint sent (<backend>%s<id>)", excerpt([]byte(fmt.Sprint(id.Value()))), fedIDSeparator)
	}
	backend, key, found := strings.Cut(shown, fedIDSeparator)
	if !found {
		return "", mcpgo.RequestId{}, fmt.Errorf("id %q is not one the federated endpoint sent (<backend>%s<id>)", truncate(shown, maxLoggedName), fedIDSeparator)
	}
	if _, ok := fc.sessions[backend]; !ok {
		return "", mcpgo.RequestId{}, fmt.Errorf("id %q names no backend of this session", truncate(shown, maxLoggedName))
	}
	msgs, _, err := mcp.ParseReply([]byte(`{"jsonrpc":"2.0","id":` + key + `,"result":{}}`))
	if err != nil || len(msgs) != 1 || msgs[0].IDKey != key {
		return "", mcpgo.RequestId{}, fmt.Errorf("id %q does not end in a canonical JSON-RPC id", truncate(shown, maxLoggedName))
	}
	return backend, msgs[0].ID, nil
}

// withMember is msg (one JSON-RPC object) with member name set to value.
func withMember(msg []byte, name string, value any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return nil, err
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	obj[name] = v
	return json.Marshal(obj)
}

// withParam is msg with params.name set to value.
func withParam(msg []byte, name string, value any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return nil, err
	}
	params := map[string]json.RawMessage{}
	if len(obj["params"]) > 0 {
		if err := json.Unmarshal(obj["params"], &params); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	params[name] = v
	if obj["params"], err = json.Marshal(params); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// messageOut is one message of backend's, as the client sees it on the
// federated endpoint, or nil when it is left out. Server requests get
// federated ids (a backend's own server cancelling one names it the same
// way), resources/updated a federated URI; other messages (responses to
// the client's requests, progress, logging, list_changed) go unchanged.
func (g *Gateway) messageOut(fc *fedCall, backend string, m *mcp.Message) ([]byte, error) {
	switch {
	case m.Kind == mcp.KindRequest:
		return withMember(m.Encode(), "id", fedIDOut(backend, m.IDKey))
	case m.Kind != mcp.KindNotification:
		return m.Encode(), nil
	case m.Method == string(mcpgo.MethodNotificationResourceUpdated):
		uri, ok := m.Params.Get("uri")
		if !ok || uri.Str == "" {
			return nil, errors.New("notifications/resources/updated without params.uri")
		}
		shown, ok := fc.uriOut(backend, uri.Str)
		if !ok {
			// Shown as is, it would route to no backend: left out.
			g.log.Warn("federated stream: resources/updated for a URI the federated endpoint cannot show, left out", "request_id", fc.requestID, "backend", backend)
			return nil, nil
		}
		return withParam(m.Encode(), "uri", shown)
	case m.Method == string(mcpgo.MethodNotificationCancelled):
		rid, ok := m.Params.Get("requestId")
		if !ok {
			return m.Encode(), nil
		}
		return withParam(m.Encode(), "requestId", fedIDOut(backend, string(rid.Encode())))
	}
	return m.Encode(), nil
}

// eventOut is one SSE event's data of backend's as the client sees it
// (nil: nothing left to send), and the ids of the responses it carries.
func (g *Gateway) eventOut(fc *fedCall, backend string, data []byte) ([]byte, []string, error) {
	msgs, batch, err := mcp.ParseReply(data)
	if err != nil {
		return nil, nil, err
	}
	var out [][]byte
	var answered []string
	for i := range msgs {
		enc, err := g.messageOut(fc, backend, &msgs[i])
		if err != nil {
			return nil, nil, err
		}
		if enc == nil {
			continue
		}
		if msgs[i].Kind == mcp.KindResponse {
			answered = append(answered, msgs[i].IDKey)
		}
		out = append(out, enc)
	}
	if len(out) == 0 {
		return nil, answered, nil
	}
	return mcp.EncodeMessages(out, batch), answered, nil
}

// relayFromBackend sends one client request (body, the request with the
// backend's own names; call is the client's request) to backend's path and copies that
// path's answer back as it comes: a JSON answer as is, an SSE answer event
// by event (progress, logging, server requests with federated ids, then
// the response). A backend session the backend path no longer knows is
// answered as a JSON-RPC error naming the backend (sessionLost). It is the
// one function every routed request of the federated endpoint uses
// (tools/call; prompts/get, resources/read and completion/complete too).
func (g *Gateway) relayFromBackend(c *fiber.Ctx, fc *fedCall, backend string, body []byte, call *mcp.Message) error {
	s := g.openViaBackend(fc, backend, http.MethodPost, body)
	for _, h := range []string{fiber.HeaderWWWAuthenticate, fiber.HeaderRetryAfter} {
		if v := s.header.Get(h); v != "" {
			c.Set(h, v)
		}
	}
	if s.stream == nil || mediaType(s.contentType) != "text/event-stream" {
		defer s.Close()
		if s.stream != nil {
			b, err := readAllLimit(s.stream, maxJSONResponse)
			if err != nil {
				return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(call.ID, mcp.CodeBackend, fmt.Sprintf("backend %s: answer unreadable or over %d bytes", backend, maxJSONResponse), nil))
			}
			s.body = b
		}
		if g.sessionLost(fc, &s.subAnswer) {
			return sendJSON(c, fiber.StatusOK, sessionLostError(call.ID, backend))
		}
		if s.contentType != "" {
			c.Set(fiber.HeaderContentType, s.contentType)
		}
		return c.Status(s.status).Send(s.body)
	}
	return g.sendEvents(c, fc, []*subStream{s}, g.shutdown, call)
}

// sessionLost reports a backend path that answered 404 to a request that
// carried the backend's session: the gateway's session for it expired, or
// the backend restarted and forgot its own. Only that backend is affected.
func (g *Gateway) sessionLost(fc *fedCall, a *subAnswer) bool {
	if a.status != fiber.StatusNotFound || fc.sessions[a.backend] == "" {
		return false
	}
	g.log.Warn("federated: backend session lost", "request_id", fc.requestID, "backend", a.backend, "body", excerpt(a.body))
	return true
}

// sessionLostError is the client's answer for a request to a backend whose
// session was lost: the federated session goes on with the other backends.
func sessionLostError(id mcpgo.RequestId, backend string) []byte {
	return mcp.ErrorResponse(id, mcp.CodeBackend,
		fmt.Sprintf("backend %s no longer knows this session (HTTP 404: it expired or the backend restarted): initialize a new session on the federated endpoint to reach it again; the other backends still work", backend),
		map[string]any{"backend": backend})
}

// fedEvent is what one backend stream's reader hands the client writer.
type fedEvent struct {
	backend  string
	data     []byte   // an encoded SSE event; nil with end
	answered []string // ids of the responses in it
	end      bool
	err      error // why the stream ended (io.EOF: cleanly)
}

// sendEvents answers the client with an SSE stream merging streams' events
// until every stream ended, the client stopped reading, or end closed.
// call, when set, is the request the stream answers (matched by its IDKey,
// the strict reader's spelling of the id): a stream that ends
// before its response gets an error response naming the backend.
//
// Each event is re-encoded from its data only: the backends' SSE ids are
// not passed on (two backends may use the same ones), and so no client has
// a Last-Event-ID to resume with. Memory is bounded per backend stream to
// one event (mcp.MaxEventBytes): its reader waits for the writer to take
// each one, and the writer hands the client each in chunks (clientWriter).
func (g *Gateway) sendEvents(c *fiber.Ctx, fc *fedCall, streams []*subStream, end <-chan struct{}, call *mcp.Message) error {
	c.Status(fiber.StatusOK)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
	c.Set("X-Accel-Buffering", "no")
	conn := c.Context().Conn()
	timeout := g.server.StreamWriteLimit()
	g.streams.Add(1)
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer g.streams.Done()
		w := &clientWriter{w: bw, conn: conn, timeout: timeout}
		defer w.finish()
		events := make(chan fedEvent)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Go(func() { g.readBackendEvents(fc, s, events, stop) })
		}
		// Every backend stream is closed (its backend path's relay ends)
		// and every reader gone before the writer returns.
		defer func() {
			close(stop)
			for _, s := range streams {
				s.Close()
			}
			wg.Wait()
		}()
		if w.write([]byte(": stream open\n\n")) != nil || w.flush() != nil {
			return
		}
		answered := call == nil
		ping := time.NewTicker(streamPing(timeout))
		defer ping.Stop()
		for live := len(streams); live > 0; {
			select {
			case ev := <-events:
				if ev.end {
					live--
					if !errors.Is(ev.err, io.EOF) {
						g.log.Warn("federated stream: backend stream ended", "request_id", fc.requestID, "backend", ev.backend, "err", ev.err)
					}
					if !answered && live == 0 {
						_ = w.write(mcp.EncodeEvent(mcp.ErrorResponse(call.ID, mcp.CodeBackend, fmt.Sprintf("backend %s ended its answer before answering", ev.backend), nil)))
						_ = w.flush()
					}
					continue
				}
				if call != nil && slices.Contains(ev.answered, call.IDKey) {
					answered = true
				}
				if w.write(ev.data) != nil || w.flush() != nil {
					return
				}
			case <-ping.C:
				if w.write([]byte(": ping\n\n")) != nil || w.flush() != nil {
					return
				}
			case <-end:
				return
			}
		}
	})
	return nil
}

// readBackendEvents reads one backend stream's events and hands each, as
// the client sees it, to the writer, one at a time; it ends with an end
// event, or at once when stop closes.
func (g *Gateway) readBackendEvents(fc *fedCall, s *subStream, events chan<- fedEvent, stop <-chan struct{}) {
	send := func(ev fedEvent) bool {
		select {
		case events <- ev:
			return true
		case <-stop:
			return false
		}
	}
	reader := mcp.NewEventReader(s.stream)
	for {
		ev, err := reader.Next()
		if err != nil {
			send(fedEvent{backend: s.backend, end: true, err: err})
			return
		}
		if !ev.HasData || len(strings.TrimSpace(string(ev.Data))) == 0 {
			continue // comments and pings: the writer pings on its own
		}
		data, answered, err := g.eventOut(fc, s.backend, ev.Data)
		if err != nil {
			// What the gateway cannot read is not relayed: this backend's
			// stream ends, the others go on.
			send(fedEvent{backend: s.backend, end: true, err: fmt.Errorf("event refused: %w", err)})
			return
		}
		if data == nil {
			continue
		}
		if !send(fedEvent{backend: s.backend, data: mcp.EncodeEvent(data), answered: answered}) {
			return
		}
	}
}

// federatedGet merges the GET stream of every session backend into one SSE
// stream. A backend whose path does not open one (405: the backend has no
// stream; 403: the policy denies it; 404: its session was lost) is left out
// of the merge, logged; when none opens, the answer is 405 as before. One
// backend's stream ending leaves the others on; the client leaving ends
// them all. Last-Event-ID is ignored: the merged stream sends no event ids
// (sendEvents), so a reconnecting client starts afresh.
func (g *Gateway) federatedGet(c *fiber.Ctx, fc *fedCall) error {
	if fc.sessions == nil {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "Mcp-Session-Id required: a GET stream belongs to a session; start it with initialize"))
	}
	if !accepts(c.Get(fiber.HeaderAccept), "text/event-stream") {
		return g.reject(c, rpcRefusal(fiber.StatusNotAcceptable, nil, mcpgo.INVALID_REQUEST, "Accept header must list text/event-stream"))
	}
	names := slices.Sorted(maps.Keys(fc.sessions))
	opened := make([]*subStream, len(names))
	var wg sync.WaitGroup
	for i, b := range names {
		wg.Go(func() { opened[i] = g.openViaBackend(fc, b, http.MethodGet, nil) })
	}
	wg.Wait()
	var streams []*subStream
	for _, s := range opened {
		if s.status == fiber.StatusOK && s.stream != nil && mediaType(s.contentType) == "text/event-stream" {
			streams = append(streams, s)
			continue
		}
		s.Close()
		if s.status != fiber.StatusMethodNotAllowed {
			g.log.Warn("federated GET: backend stream left out of the merge", "request_id", fc.requestID, "backend", s.backend, "status", s.status)
		}
	}
	if len(streams) == 0 {
		return g.reject(c, &rejection{form: formRPC, status: fiber.StatusMethodNotAllowed, rpc: mcpgo.INVALID_REQUEST,
			msg: "no backend of this session opens a GET stream: use POST, or DELETE to end the session", headers: map[string]string{fiber.HeaderAllow: "GET, POST, DELETE"}})
	}
	return g.sendEvents(c, fc, streams, g.draining, nil)
}

// federatedResponse routes a client's response to a server request (its id
// a federated one, fedIDIn) to the backend path that asked, with the
// original id, and answers 202. The confirm obligation's answers go the
// same way: the backend path takes them out itself.
func (g *Gateway) federatedResponse(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	backend, id, err := fc.fedIDIn(m.ID)
	if err != nil {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "response: "+err.Error()))
	}
	body, err := withMember(m.Encode(), "id", id)
	if err != nil {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "response: "+err.Error()))
	}
	a := g.viaBackend(fc, backend, http.MethodPost, body)
	switch {
	case a.status < 300:
		return c.SendStatus(fiber.StatusAccepted)
	case g.sessionLost(fc, &a):
		return sendJSON(c, fiber.StatusOK, sessionLostError(mcpgo.NewRequestId(nil), backend))
	}
	if a.contentType != "" {
		c.Set(fiber.HeaderContentType, a.contentType)
	}
	return c.Status(a.status).Send(a.body)
}

// federatedNotification passes the client's notifications on: initialized
// and roots/list_changed to every backend of the session; cancelled to
// every backend too (the session does not record which backend a request
// went to, and a backend ignores a requestId it does not know, as the spec
// says it may); progress is dropped (a client reports it on a server
// request's progress token, which goes to the client unchanged, so nothing
// in it says which backend it is for). Others are dropped. Answered 202 in any case: a notification has no reply.
func (g *Gateway) federatedNotification(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	switch m.Method {
	case string(mcpgo.MethodNotificationInitialized), string(mcpgo.MethodNotificationRootsListChanged), string(mcpgo.MethodNotificationCancelled):
		body := m.Encode()
		for _, a := range g.fanOut(fc, slices.Sorted(maps.Keys(fc.sessions)), func(string) (string, []byte) { return http.MethodPost, body }) {
			if a.status >= 300 {
				g.log.Warn("federated notification: backend refused it", "request_id", fc.requestID, "backend", a.backend, "method", m.Method, "status", a.status)
			}
		}
	}
	return c.SendStatus(fiber.StatusAccepted)
}
