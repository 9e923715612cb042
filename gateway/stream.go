package gateway

import (
	"bufio"
	"context"
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
func (g *Gateway) stream(c *fiber.Ctx, cl *call, resp *http.Response, methods map[string]string, denied [][]byte, ctx context.Context, cancel context.CancelFunc) error {
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
					out := x.ev.Raw
					if x.ev.HasData {
						if filtered, changed := g.filterMessage(ctx, cl, x.ev.Data, methods); changed {
							out = x.ev.WithData(filtered)
						}
					}
					if _, err := w.Write(out); err != nil {
						return
					}
					if err := w.Flush(); err != nil {
						return
					}
				}
				if x.err != nil {
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
