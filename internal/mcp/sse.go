package mcp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The gateway relays SSE event by event and must forward each one byte for
// byte (ids drive resumption, comments keep proxies from idling out), only
// rewriting the data of list results it filters. SSE libraries decode events
// into structs and drop comments, so this small reader splits the stream at
// event boundaries itself and keeps the raw bytes.

// MaxEventBytes bounds one event so a misbehaving backend cannot exhaust memory.
const MaxEventBytes = 32 << 20

// Event is one SSE event (or a comment block) with its raw bytes.
type Event struct {
	// Raw is the event as received, including the blank line that ends it.
	Raw []byte
	// Data is the concatenation of its data lines, joined by "\n".
	Data    []byte
	HasData bool
	ID      string
	Name    string
}

// EventReader reads SSE events.
type EventReader struct {
	r *bufio.Reader
}

// NewEventReader reads events from r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// ErrEventTooLarge is returned for an event over MaxEventBytes.
var ErrEventTooLarge = errors.New("sse event too large")

// Next returns the next event. At the end of the stream it returns io.EOF,
// or the partial last event with io.ErrUnexpectedEOF.
func (er *EventReader) Next() (Event, error) {
	var ev Event
	var raw bytes.Buffer
	var data bytes.Buffer
	for {
		line, err := er.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it whole.
			rest, rerr := er.r.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
			err = rerr
		}
		if raw.Len()+len(line) > MaxEventBytes {
			return Event{}, ErrEventTooLarge
		}
		raw.Write(line)
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 && err == nil {
			if raw.Len() == len(line) {
				// Stray blank line between events: nothing to relay.
				raw.Reset()
				continue
			}
			ev.Raw = raw.Bytes()
			ev.Data = data.Bytes()
			return ev, nil
		}
		if len(content) > 0 {
			field, value, _ := bytes.Cut(content, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "data":
				if ev.HasData {
					data.WriteByte('\n')
				}
				data.Write(value)
				ev.HasData = true
			case "id":
				ev.ID = string(value)
			case "event":
				ev.Name = string(value)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if raw.Len() == 0 {
					return Event{}, io.EOF
				}
				ev.Raw = raw.Bytes()
				ev.Data = data.Bytes()
				return ev, io.ErrUnexpectedEOF
			}
			return Event{}, fmt.Errorf("read sse: %w", err)
		}
	}
}

// WithData re-encodes the event with new data, keeping its other lines.
func (ev Event) WithData(data []byte) []byte {
	var out bytes.Buffer
	wroteData := false
	for _, line := range bytes.SplitAfter(ev.Raw, []byte("\n")) {
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			continue
		}
		if bytes.HasPrefix(content, []byte("data:")) || bytes.Equal(content, []byte("data")) {
			if !wroteData {
				for _, dl := range bytes.Split(data, []byte("\n")) {
					out.WriteString("data: ")
					out.Write(dl)
					out.WriteByte('\n')
				}
				wroteData = true
			}
			continue
		}
		out.Write(content)
		out.WriteByte('\n')
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// EncodeEvent writes a data-only event, for messages the gateway itself
// adds to a stream (denials of batch members).
func EncodeEvent(data []byte) []byte {
	return Event{Raw: []byte("data:\n\n")}.WithData(data)
}
