package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// The confirm obligation: before the call is forwarded, the gateway asks
// the person through MCP elicitation (elicitation/create, sent on the SSE
// answer of the call's POST) and forwards only on an explicit accept. The
// client answers with a POST of its own, which this file recognises by the
// gateway's request id and never forwards.

// confirmIDPrefix marks the ids of the gateway's own requests to clients.
const confirmIDPrefix = "mcpgw-confirm-"

// confirmTimeout bounds the wait for the person's answer.
const confirmTimeout = 2 * time.Minute

// confirmations are this replica's questions waiting for an answer. An
// answer that reaches this replica is handed over at once; one that
// reaches another goes through the store (Options.Confirmations), which
// the asking replica polls.
type confirmations struct {
	mu      sync.Mutex
	waiting map[string]*pendingConfirm
}

type pendingConfirm struct {
	owner  string // session and subject: only the asker's client may answer
	answer chan string
}

func (cs *confirmations) ask(owner string) (string, *pendingConfirm) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := confirmIDPrefix + fmt.Sprintf("%x", b)
	p := &pendingConfirm{owner: owner, answer: make(chan string, 1)}
	cs.mu.Lock()
	if cs.waiting == nil {
		cs.waiting = map[string]*pendingConfirm{}
	}
	cs.waiting[id] = p
	cs.mu.Unlock()
	return id, p
}

func (cs *confirmations) forget(id string) {
	cs.mu.Lock()
	delete(cs.waiting, id)
	cs.mu.Unlock()
}

// deliver hands an answer to the question id, if this replica asked it of
// owner.
func (cs *confirmations) deliver(id, owner, action string) bool {
	cs.mu.Lock()
	p, ok := cs.waiting[id]
	if ok && p.owner == owner {
		delete(cs.waiting, id)
	}
	cs.mu.Unlock()
	if !ok || p.owner != owner {
		return false
	}
	p.answer <- action
	return true
}

func confirmOwner(cl *call) string { return cl.sessionID + " " + subjectKey(cl.principal) }

// isConfirmAnswer reports a client's response to one of the gateway's own
// questions.
func isConfirmAnswer(m *mcp.Message) bool {
	if m.Kind != mcp.KindResponse {
		return false
	}
	s, ok := m.ID.Value().(string)
	return ok && strings.HasPrefix(s, confirmIDPrefix)
}

// confirmPoll is how often an asking replica looks in the store for an
// answer another replica received.
const confirmPoll = 250 * time.Millisecond

// takeConfirmAnswers delivers the answers among msgs and returns the rest,
// which go on as usual.
func (g *Gateway) takeConfirmAnswers(ctx context.Context, cl *call, msgs []mcp.Message) []mcp.Message {
	rest := msgs[:0:0]
	for i := range msgs {
		m := &msgs[i]
		if !isConfirmAnswer(m) {
			rest = append(rest, *m)
			continue
		}
		action := "cancel"
		if res, ok := m.Result(); ok {
			if a, ok := res.Get("action"); ok && a.Str != "" {
				action = a.Str
			}
		}
		id, _ := m.ID.Value().(string)
		if g.confirms.deliver(id, confirmOwner(cl), action) {
			continue
		}
		delivered := false
		if cs := g.opts.Confirmations; cs != nil {
			var err error
			if delivered, err = cs.AnswerConfirmation(ctx, id, confirmOwner(cl), action, g.now()); err != nil {
				g.log.Error("store a confirmation answer", "request_id", cl.requestID, "err", err)
			}
		}
		if !delivered {
			g.log.Warn("a confirmation answer for no open question of this session", "request_id", cl.requestID)
		}
	}
	return rest
}

// confirmable refuses a call whose confirmation cannot be asked: in a
// batch (one question holds one call), or from a client that did not
// declare elicitation when its session opened (it could not show the
// question).
func (g *Gateway) confirmable(cl *call, m *mcp.Message, batch bool) *rejection {
	switch {
	case m.Kind != mcp.KindRequest || batch:
		return rpcRefusal(fiber.StatusOK, &m.ID, mcp.CodeForbidden, "the policy asks the person to confirm this call, which cannot be asked inside a batch or for a notification")
	case !cl.hasSession || !cl.session.Elicit:
		return rpcRefusal(fiber.StatusOK, &m.ID, mcp.CodeForbidden, "the policy asks the person to confirm this call, and this client did not declare the elicitation capability to ask them")
	}
	return nil
}

// confirmThenRelay answers the call's POST with an SSE stream: the
// question, then, on accept, the backend's answer (filtered as every
// answer is), else a refusal. The person's answer is audited.
func (g *Gateway) confirmThenRelay(c *fiber.Ctx, cl *call, m *mcp.Message, d policy.Decision, body []byte, pending requests) error {
	id, p := g.confirms.ask(confirmOwner(cl))
	if cs := g.opts.Confirmations; cs != nil {
		if err := cs.AskConfirmation(c.UserContext(), id, confirmOwner(cl), g.now().Add(confirmTimeout)); err != nil {
			g.confirms.forget(id)
			g.log.Error("store a confirmation question", "request_id", cl.requestID, "err", err)
			return g.reject(c, rpcRefusal(fiber.StatusOK, &m.ID, mcp.CodeBackend, "the confirmation the policy asks for cannot be asked right now"))
		}
	}
	question, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id, "method": "elicitation/create",
		"params": map[string]any{
			"message":         d.Obligations.Confirm.Message,
			"requestedSchema": map[string]any{"type": "object", "properties": map[string]any{}},
		},
	})
	callID := m.ID
	tool := m.Target()
	r := cl.route
	req := upstream.Request{Method: http.MethodPost, URL: r.forwardURL(cl.rest), Header: g.upstreamHeaders(c, cl), Body: body, Timeout: r.backend.Timeout()}
	caller := cl.caller()
	// The stream outlives the handler: its context is its own, keeping the
	// request's trace.
	ctx, cancel := context.WithCancel(trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(c.UserContext())))
	cl.rec.stream = true
	gone := readerGone(c.Context().Conn())
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Status(fiber.StatusOK)
	g.streams.Add(1)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer g.streams.Done()
		defer cancel()
		defer g.confirms.forget(id)
		if cs := g.opts.Confirmations; cs != nil {
			defer func() { _ = cs.ForgetConfirmation(context.WithoutCancel(ctx), id, g.now()) }()
		}
		write := func(data []byte) bool {
			if _, err := w.Write(mcp.EncodeEvent(data)); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		refuse := func(msg string) {
			write(mcp.ErrorResponse(callID, mcp.CodeForbidden, msg, map[string]any{"decision_id": d.ID}))
		}
		if !write(question) {
			return
		}
		action := g.awaitConfirmation(ctx, id, p, gone)
		g.auditConfirmation(ctx, cl, tool, d, action)
		if action != "accept" {
			refuse(fmt.Sprintf("the person did not confirm the call (%s)", action))
			return
		}
		resp, err := g.client.Send(ctx, r.injector, caller, req)
		if err != nil {
			write(mcp.ErrorResponse(callID, mcp.CodeBackend, fmt.Sprintf("backend %s failed", r.backend.Name), nil))
			return
		}
		defer resp.Body.Close()
		fw := &forwarded{method: http.MethodPost, body: body, pending: pending}
		if mediaType(resp.Header.Get("Content-Type")) == "text/event-stream" {
			events := mcp.NewEventReader(resp.Body)
			for {
				ev, err := events.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						write(mcp.ErrorResponse(callID, mcp.CodeBackend, fmt.Sprintf("backend %s ended its answer early", r.backend.Name), nil))
					}
					return
				}
				if !ev.HasData || len(bytes.TrimSpace(ev.Data)) == 0 {
					continue
				}
				out, _, err := g.filterEvent(ctx, cl, ev.Data, pending)
				if err != nil || !write(out) {
					return
				}
			}
		}
		payload, err := readBody(resp)
		if err != nil || resp.StatusCode >= 400 {
			write(mcp.ErrorResponse(callID, mcp.CodeBackend, fmt.Sprintf("backend %s answered HTTP %d", r.backend.Name, resp.StatusCode), nil))
			return
		}
		out, isJSON, err := g.filterReply(ctx, cl, payload, resp.Header.Get("Content-Type"), fw)
		if err != nil || !isJSON {
			write(mcp.ErrorResponse(callID, mcp.CodeBackend, fmt.Sprintf("backend %s sent a reply the gateway cannot read unambiguously", r.backend.Name), nil))
			return
		}
		write(out)
	})
	return nil
}

// awaitConfirmation waits for the person's answer: handed over on this
// replica, or found in the store when another replica received it.
// gone (the federated endpoint stopped reading, readerGone) ends the wait
// as a cancel.
func (g *Gateway) awaitConfirmation(ctx context.Context, id string, p *pendingConfirm, gone <-chan struct{}) string {
	timer := time.NewTimer(confirmTimeout)
	defer timer.Stop()
	var poll <-chan time.Time
	if g.opts.Confirmations != nil {
		t := time.NewTicker(confirmPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case action := <-p.answer:
			return action
		case <-timer.C:
			return "timeout"
		case <-g.draining:
			return "cancel"
		case <-gone:
			return "cancel"
		case <-poll:
			if a, err := g.opts.Confirmations.ConfirmationAnswer(ctx, id); err == nil && a != "" {
				return a
			}
		}
	}
}

// auditConfirmation records the person's answer under the call's decision.
func (g *Gateway) auditConfirmation(ctx context.Context, cl *call, tool string, d policy.Decision, action string) {
	if g.opts.Audit == nil {
		return
	}
	g.opts.Audit(ctx, audit.Record{
		Kind: audit.KindDecision, DecisionID: d.ID + "-confirm", RequestID: cl.requestID,
		Subject: cl.principal.Subject, Issuer: cl.principal.Issuer, Agent: cl.agent.ID(), Backend: cl.route.backend.Name,
		Method: string(mcpgo.MethodToolsCall), Tool: tool, Allow: action == "accept", Revision: d.Revision,
		Reasons: []string{"confirmation: the person answered " + action + " (obligation of decision " + d.ID + ")"},
		Outcome: "confirm_" + action,
	})
}
