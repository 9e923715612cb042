package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// pingInterval keeps quiet streams alive through proxies and lets the
// gateway notice a client that left (fasthttp does not say so otherwise:
// only a failed write does).
const pingInterval = 15 * time.Second

type eventOrErr struct {
	ev  mcp.Event
	err error
}

// stream relays an SSE response event by event, flushing each one as it
// arrives. It must not touch the Fiber context once the writer runs.
func (g *Gateway) stream(c *fiber.Ctx, cl *call, resp *http.Response, pending requests, denied [][]byte, ctx context.Context, cancel context.CancelFunc) error {
	upstream.StopDeadline(resp)
	c.Status(resp.StatusCode)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
	c.Set("X-Accel-Buffering", "no")
	g.streams.Add(1)
	if g.opts.Observer != nil {
		g.opts.Observer.StreamOpened()
	}
	end := g.shutdown
	if c.Method() == fiber.MethodGet {
		end = g.draining
	}
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer g.streams.Done()
		defer cancel()
		defer resp.Body.Close()
		if g.opts.Observer != nil {
			defer g.opts.Observer.StreamClosed()
		}
		for _, d := range denied {
			_, _ = w.Write(mcp.EncodeEvent(d))
		}
		if len(denied) == 0 {
			// fasthttp sends the headers with the first bytes; a quiet
			// stream (GET) would otherwise keep the client waiting for them.
			_, _ = w.WriteString(": stream open\n\n")
		}
		if err := w.Flush(); err != nil {
			return
		}
		unanswered := maps.Clone(pending)
		if unanswered == nil {
			unanswered = requests{}
		}
		events := make(chan eventOrErr)
		go func() {
			reader := mcp.NewEventReader(resp.Body)
			for {
				ev, err := reader.Next()
				select {
				case events <- eventOrErr{ev, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		ping := time.NewTicker(pingInterval)
		defer ping.Stop()
		for {
			select {
			case x := <-events:
				if len(x.ev.Raw) > 0 {
					out, ok := g.relayEvent(ctx, cl, x.ev, pending, unanswered)
					if !ok {
						// The backend sent what the gateway cannot read:
						// answer what is still pending and end the stream
						// rather than relay bytes a client may read otherwise.
						for _, e := range unanswered.errors(mcp.CodeBackend, fmt.Sprintf("backend %s sent an event the gateway cannot read unambiguously", cl.route.backend.Name)) {
							_, _ = w.Write(mcp.EncodeEvent(e))
						}
						_ = w.Flush()
						return
					}
					if _, err := w.Write(out); err != nil {
						return
					}
					if err := w.Flush(); err != nil {
						return
					}
				}
				if x.err != nil {
					if errors.Is(x.err, mcp.ErrEventTooLarge) {
						// The reader stopped inside the event: answer what is
						// still pending rather than leave the client waiting.
						g.log.Warn("backend event refused", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", x.err)
						for _, e := range unanswered.errors(mcp.CodeBackend, fmt.Sprintf("backend %s sent an event over %d bytes", cl.route.backend.Name, mcp.MaxEventBytes)) {
							_, _ = w.Write(mcp.EncodeEvent(e))
						}
						_ = w.Flush()
					}
					return
				}
			case <-ping.C:
				if _, err := w.WriteString(": ping\n\n"); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return
				}
			case <-end:
				return
			}
		}
	})
	return nil
}

// relayEvent is what the client gets for one backend event: the event with
// its data re-encoded from the gateway's reading and its lists filtered.
// Events without data (comments, priming events with only an id) go as
// read. ok is false for data that is not one reading of JSON-RPC.
func (g *Gateway) relayEvent(ctx context.Context, cl *call, ev mcp.Event, pending, unanswered requests) ([]byte, bool) {
	if !ev.HasData || len(bytes.TrimSpace(ev.Data)) == 0 {
		return ev.Raw, true
	}
	filtered, answered, err := g.filterEvent(ctx, cl, ev.Data, pending)
	if err != nil {
		g.log.Warn("backend event refused", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", err)
		return nil, false
	}
	for _, id := range answered {
		delete(unanswered, id)
	}
	return ev.WithData(filtered), true
}
