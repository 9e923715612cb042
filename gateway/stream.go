package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// pingInterval keeps quiet streams alive through proxies and lets the
// gateway notice a client that left (fasthttp does not say so otherwise:
// only a failed write does).
const pingInterval = 15 * time.Second

// streamChunk is the most the stream hands fasthttp in one write. fasthttp
// copies each write whole into a pipe that holds four of them before the
// writer blocks: written whole, a 32 MiB event would sit there up to five
// times over for a client that stopped reading. In chunks, the pipe holds
// at most ~128 KiB, and the write deadline moves with every chunk the
// client accepts.
const streamChunk = 32 << 10

type eventOrErr struct {
	ev  mcp.Event
	err error
}

// streamObserver is the part of the Observer (telemetry.Metrics) that
// counts streams closed abnormally; an Observer without it is not told.
type streamObserver interface {
	StreamWriteTimedOut()
	StreamBackendLost()
}

// stream relays an SSE response event by event, flushing each one as it
// arrives. It must not touch the Fiber context once the writer runs.
//
// Memory per stream is bounded to about one event: the backend is read one
// event at a time, the next only once the previous one was handed to the
// client's connection, and that hand-off goes in chunks (streamChunk). A
// client that accepts no bytes for server.stream_write_timeout loses the
// stream: fasthttp has no write deadline for a body stream writer, so the
// deadline is set on the client's connection itself before each chunk.
func (g *Gateway) stream(ctx context.Context, cancel context.CancelFunc, c *fiber.Ctx, cl *call, resp *http.Response, fw *forwarded) error {
	pending, denied := fw.pending, fw.denied
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
	// Read before the writer runs: the Fiber context is not the writer's.
	conn := c.Context().Conn()
	gone := readerGone(conn)
	timeout := g.server.StreamWriteLimit()
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer g.streams.Done()
		defer cancel()
		defer resp.Body.Close()
		if g.opts.Observer != nil {
			defer g.opts.Observer.StreamClosed()
		}
		w := &clientWriter{w: bw, conn: conn, timeout: timeout}
		defer w.finish()
		for _, d := range denied {
			if w.write(mcp.EncodeEvent(d)) != nil {
				g.clientStalled(cl, w)
				return
			}
		}
		if len(denied) == 0 {
			// fasthttp sends the headers with the first bytes; a quiet
			// stream (GET) would otherwise keep the client waiting for them.
			_ = w.write([]byte(": stream open\n\n"))
		}
		if err := w.flush(); err != nil {
			g.clientStalled(cl, w)
			return
		}
		unanswered := maps.Clone(pending)
		if unanswered == nil {
			unanswered = requests{}
		}
		// answerPending ends the stream with an error event for every
		// request still unanswered, so no client waits for a reply that
		// cannot come.
		answerPending := func(msg string) {
			for _, e := range unanswered.errors(mcp.CodeBackend, msg) {
				if w.write(mcp.EncodeEvent(e)) != nil {
					return
				}
			}
			_ = w.flush()
		}
		events := make(chan eventOrErr)
		// want paces the reader: it reads the next event only once the
		// writer has handed the previous one to the client's connection,
		// so a slow client holds one event, not a queue of them.
		want := make(chan struct{}, 1)
		want <- struct{}{}
		go func() {
			reader := mcp.NewEventReader(resp.Body)
			for {
				select {
				case <-want:
				case <-ctx.Done():
					return
				}
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
		ping := time.NewTicker(streamPing(timeout))
		defer ping.Stop()
		for {
			select {
			case x := <-events:
				// A partial last event (cut by the end of the stream) is
				// never dispatched by a client, so it is neither relayed
				// nor taken as an answer.
				if len(x.ev.Raw) > 0 && x.err == nil {
					out, ok := g.relayEvent(ctx, cl, x.ev, pending, unanswered)
					// Only out is needed now: a write that blocks on a
					// stalled client must not keep the event read too.
					x.ev = mcp.Event{}
					if !ok {
						// The backend sent what the gateway cannot read:
						// answer what is still pending and end the stream
						// rather than relay bytes a client may read otherwise.
						answerPending(fmt.Sprintf("backend %s sent an event the gateway cannot read unambiguously", cl.route.backend.Name))
						return
					}
					if w.write(out) != nil || w.flush() != nil {
						g.clientStalled(cl, w)
						return
					}
				}
				if x.err != nil {
					g.backendEnded(cl, x.err, unanswered, answerPending)
					return
				}
				want <- struct{}{}
			case <-ping.C:
				if w.write([]byte(": ping\n\n")) != nil || w.flush() != nil {
					g.clientStalled(cl, w)
					return
				}
			case <-end:
				return
			case <-gone:
				return
			}
		}
	})
	return nil
}

// readerGone is closed when the reader of an in-process request (the
// federated endpoint, subConn) stops reading; nil (never) for a client's
// own connection, whose leaving only a failed write reveals.
func readerGone(conn net.Conn) <-chan struct{} {
	if g, ok := conn.(interface{ Gone() <-chan struct{} }); ok {
		return g.Gone()
	}
	return nil
}

// backendEnded handles the end of the backend's stream, clean or not.
// Requests forwarded on it and not yet answered get a -32010 error naming
// the backend: the backend went away (it crashed, was redeployed, or its
// connection broke mid-event) and will not answer on this stream.
func (g *Gateway) backendEnded(cl *call, err error, unanswered requests, answerPending func(string)) {
	name := cl.route.backend.Name
	if errors.Is(err, mcp.ErrEventTooLarge) {
		// The reader stopped inside the event: answer what is
		// still pending rather than leave the client waiting.
		g.log.Warn("backend event refused", "request_id", cl.requestID, "backend", name, "err", err)
		answerPending(fmt.Sprintf("backend %s sent an event over %d bytes", name, mcp.MaxEventBytes))
		return
	}
	if len(unanswered) == 0 {
		return // a stream that ends once everything is answered ends normally
	}
	attrs := []any{"request_id", cl.requestID, "backend", name, "unanswered", len(unanswered)}
	if !errors.Is(err, io.EOF) {
		attrs = append(attrs, "err", secrets.Error(err))
	}
	g.log.Warn("backend stream ended before answering every request", attrs...)
	if o, ok := g.opts.Observer.(streamObserver); ok {
		o.StreamBackendLost()
	}
	msg := fmt.Sprintf("backend %s closed the stream before answering", name)
	if !errors.Is(err, io.EOF) {
		msg = fmt.Sprintf("backend %s failed mid-stream before answering", name)
	}
	answerPending(msg)
}

// clientStalled reports a stream that ended because writing to the client
// failed: gone, or (past its deadline) no longer reading.
func (g *Gateway) clientStalled(cl *call, w *clientWriter) {
	if !w.timedOut() {
		return // the client left: nothing to report
	}
	g.log.Warn("client accepted no bytes for server.stream_write_timeout; stream closed",
		"request_id", cl.requestID, "backend", cl.route.backend.Name, "stream_write_timeout", w.timeout)
	if o, ok := g.opts.Observer.(streamObserver); ok {
		o.StreamWriteTimedOut()
	}
}

// clientWriter writes a stream to the client in chunks, pushing the client
// connection's write deadline forward before each one: a client that reads,
// however slowly, keeps its stream; one that stops reading makes the server's
// write to its connection fail within timeout, fasthttp then closes the body
// stream, and the next write here fails.
type clientWriter struct {
	w        *bufio.Writer
	conn     net.Conn
	timeout  time.Duration
	deadline time.Time
	// prev is the deadline before the last extend: fasthttp's write of
	// bytes handed over earlier can have failed at prev while this
	// goroutine was waiting for the backend; the failure surfaces only
	// at the next write, after a new deadline was set.
	prev   time.Time
	failed time.Time
}

func (cw *clientWriter) extend() {
	if cw.conn == nil {
		return
	}
	cw.prev = cw.deadline
	cw.deadline = time.Now().Add(cw.timeout)
	_ = cw.conn.SetWriteDeadline(cw.deadline)
}

func (cw *clientWriter) write(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), streamChunk)
		cw.extend()
		if _, err := cw.w.Write(p[:n]); err != nil {
			return cw.fail(err)
		}
		p = p[n:]
	}
	return nil
}

func (cw *clientWriter) flush() error {
	cw.extend()
	if err := cw.w.Flush(); err != nil {
		return cw.fail(err)
	}
	return nil
}

func (cw *clientWriter) fail(err error) error {
	cw.failed = time.Now()
	return err
}

// timedOut reports a failure at or past a deadline: the client stopped
// reading (a client that left fails sooner, with the deadlines still
// ahead). Writes come at least every streamPing(timeout), so in a healthy
// stream prev is still ahead when the next deadline is set.
func (cw *clientWriter) timedOut() bool {
	if cw.failed.IsZero() || cw.deadline.IsZero() {
		return false
	}
	return !cw.failed.Before(cw.deadline) || (!cw.prev.IsZero() && !cw.failed.Before(cw.prev))
}

// streamPing is how often a quiet stream is pinged: pingInterval, or
// half the write timeout when that is shorter, so that a deadline passes
// between two writes only when a write was stuck.
func streamPing(timeout time.Duration) time.Duration {
	return max(min(pingInterval, timeout/2), time.Millisecond)
}

// finish leaves a deadline for what fasthttp writes after the stream
// writer returns (the buffered tail and the last chunk), so a client that
// stopped reading cannot hold the connection there either.
// clearWriteDeadline removes it when the connection's next request starts.
func (cw *clientWriter) finish() {
	cw.extend()
}

// clearWriteDeadline is middleware: a stream leaves a write deadline on its
// connection (clientWriter.finish), which must not cut the response to the
// next request on the same keep-alive connection.
func clearWriteDeadline(c *fiber.Ctx) error {
	resetWriteDeadline(c)
	return c.Next()
}

// resetWriteDeadline clears the connection's write deadline; the error
// handler calls it too, since Fiber runs no middleware for the requests it
// refuses itself.
func resetWriteDeadline(c *fiber.Ctx) {
	if conn := c.Context().Conn(); conn != nil {
		_ = conn.SetWriteDeadline(time.Time{})
	}
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
