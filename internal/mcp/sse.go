package mcp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The gateway relays SSE event by event and filters the list results inside
// them. What it forwards must be exactly what it read: if the gateway and a
// client split the same bytes into lines or events differently, a list
// result the gateway saw as part of something else reaches the client
// unfiltered. So the reader parses as the WHATWG HTML spec ("Interpreting an
// event stream") says, and each event is forwarded as a canonical
// re-encoding of that reading (Event.Raw), never as the bytes received.
// SSE libraries decode events into structs and drop comments, which keep
// idle streams alive, hence this small reader.

// MaxEventBytes bounds what the reader holds for one event (its canonical
// encoding, plus the joined data when the data spans several lines), so a
// backend cannot exhaust the gateway's memory. It also bounds one line:
// a line is held while it is read. 32 MiB is far above any list result.
const MaxEventBytes = 32 << 20

// readBufferSize is what the reader may read from the source beyond the
// event it holds: an over-long line is refused at most this far past the
// cap, without reading the rest of it.
const readBufferSize = 64 << 10

// ErrEventTooLarge is returned as soon as an event, or one line, passes
// MaxEventBytes. The stream cannot be resynchronised after it.
var ErrEventTooLarge = errors.New("sse event too large")

// Event is one SSE event (or a block of comments).
type Event struct {
	// Raw is the canonical encoding of the event as read: the comments and
	// the fields the reader kept, in order, one per line, with "\n" line
	// ends and a blank line at the end. A partial last event (returned
	// with io.ErrUnexpectedEOF) has no blank line, so a client does not
	// dispatch it either.
	Raw []byte
	// Data is the concatenation of its data lines, joined by "\n". It may
	// share memory with Raw: treat both as read-only.
	Data    []byte
	HasData bool
	// ID is the last id this event set ("" if none; an id containing
	// U+0000 is ignored, as the spec says).
	ID string
	// Name is the event type ("event" field), "" for the default.
	Name string
}

// EventReader reads SSE events.
type EventReader struct {
	r *bufio.Reader
	// limit is MaxEventBytes; tests lower it.
	limit int
	// started is set once a leading byte order mark was looked for.
	started bool
	// afterCR is set when the last line ended with CR: a LF that follows,
	// even in a later read, completes that line end instead of ending an
	// empty line (which would dispatch the event early).
	afterCR bool
	// err is sticky: after an error the position in the stream is lost.
	err error
}

// NewEventReader reads events from r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{r: bufio.NewReaderSize(r, readBufferSize), limit: MaxEventBytes}
}

var utf8BOM = []byte("\xEF\xBB\xBF")

// Next returns the next event. At the end of the stream it returns io.EOF,
// or the partial last event with io.ErrUnexpectedEOF. Blank lines between
// events, and blocks holding only lines the reader drops (unknown fields,
// an id with U+0000, an invalid retry), produce no event.
func (er *EventReader) Next() (Event, error) {
	if er.err != nil {
		return Event{}, er.err
	}
	ev, err := er.next()
	if err != nil {
		er.err = err
		if err == io.ErrUnexpectedEOF { // ours, not a wrapped read error
			er.err = io.EOF
		}
	}
	return ev, err
}

func (er *EventReader) next() (Event, error) {
	if !er.started {
		er.started = true
		// Only at the very start of the stream, and only once, as a UTF-8
		// decoder would. A short read here delays nothing: no event fits
		// in fewer than three bytes.
		if b, err := er.r.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
			_, _ = er.r.Discard(len(utf8BOM))
		}
	}
	var (
		ev        Event
		raw       []byte
		data      []byte // the joined data, once there are two data lines
		dataLines int
		firstData [2]int // the bounds in raw of the first data value
	)
	for {
		start := len(raw)
		var atEOF bool
		var err error
		raw, atEOF, err = er.appendLine(raw, er.limit-len(raw)-len(data))
		if err != nil {
			if errors.Is(err, ErrEventTooLarge) {
				return Event{}, err
			}
			return Event{}, fmt.Errorf("read sse: %w", err)
		}
		line := raw[start:]
		if len(line) == 0 && !atEOF {
			if len(raw) == 0 {
				// A blank line with nothing before it dispatches nothing.
				continue
			}
			if len(raw)+1+len(data) > er.limit {
				return Event{}, ErrEventTooLarge
			}
			raw = append(raw, '\n')
			return finish(ev, raw, data, dataLines, firstData), nil
		}
		if len(line) > 0 {
			lf := parseLine(line)
			if !lf.keep() {
				raw = raw[:start]
			} else {
				raw = lf.canonical(raw, start)
				value := raw[start+lf.valueAt() : len(raw)-1]
				switch lf.kind {
				case lineData:
					dataLines++
					ev.HasData = true
					if dataLines == 1 {
						firstData = [2]int{start + lf.valueAt(), len(raw) - 1}
						break
					}
					need := 1 + len(value)
					if dataLines == 2 {
						need += firstData[1] - firstData[0]
					}
					if len(raw)+len(data)+need > er.limit {
						return Event{}, ErrEventTooLarge
					}
					if dataLines == 2 {
						data = append(data, raw[firstData[0]:firstData[1]]...)
					}
					data = append(data, '\n')
					data = append(data, value...)
				case lineID:
					ev.ID = string(value)
				case lineEvent:
					ev.Name = string(value)
				}
				if len(raw)+len(data) > er.limit {
					return Event{}, ErrEventTooLarge
				}
			}
		}
		if atEOF {
			if len(raw) == 0 {
				return Event{}, io.EOF
			}
			return finish(ev, raw, data, dataLines, firstData), io.ErrUnexpectedEOF
		}
	}
}

func finish(ev Event, raw, data []byte, dataLines int, firstData [2]int) Event {
	ev.Raw = raw
	switch {
	case dataLines == 1:
		// The capacity is cut so that appending to Data cannot write into Raw.
		ev.Data = raw[firstData[0]:firstData[1]:firstData[1]]
	case dataLines > 1:
		ev.Data = data
	}
	return ev
}

// appendLine appends the next line, without its line end, to dst. It
// reports atEOF when the stream ended first (dst then holds the last,
// unterminated line, if any). It fails with ErrEventTooLarge as soon as the
// line passes limit, without reading the rest of it.
func (er *EventReader) appendLine(dst []byte, limit int) (_ []byte, atEOF bool, _ error) {
	n := 0
	for {
		if _, err := er.r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return dst, true, nil
			}
			return dst, false, err
		}
		chunk, _ := er.r.Peek(er.r.Buffered())
		if er.afterCR {
			er.afterCR = false
			if chunk[0] == '\n' {
				_, _ = er.r.Discard(1)
				continue
			}
		}
		end := bytes.IndexByte(chunk, '\n')
		if end < 0 {
			end = len(chunk)
		}
		if cr := bytes.IndexByte(chunk[:end], '\r'); cr >= 0 {
			end = cr
		}
		if n+end > limit {
			return dst, false, ErrEventTooLarge
		}
		dst = appendCapped(dst, chunk[:end], limit-n)
		n += end
		if end < len(chunk) {
			er.afterCR = chunk[end] == '\r'
			_, _ = er.r.Discard(end + 1)
			return dst, false, nil
		}
		_, _ = er.r.Discard(end)
	}
}

// appendCapped appends b to dst, growing dst by doubling but never far
// past what the line may still take: append's own growth would leave up to
// twice the cap allocated for one long line.
func appendCapped(dst, b []byte, room int) []byte {
	if len(dst)+len(b) <= cap(dst) {
		return append(dst, b...)
	}
	// A few bytes of slack for the canonical form of the line (": " and "\n").
	most := len(dst) + room + 8
	newCap := max(2*cap(dst), 512)
	newCap = max(min(newCap, most), len(dst)+len(b))
	grown := make([]byte, len(dst), newCap)
	copy(grown, dst)
	return append(grown, b...)
}

type lineKind int

const (
	lineComment lineKind = iota
	lineData
	lineID
	lineEvent
	lineRetry
	lineIgnored
)

// lineFields is one non-empty line split as the spec splits it: the field
// name up to the first ':', then the value after one optional space.
type lineFields struct {
	kind    lineKind
	nameEnd int // where the name ends in the line
	valFrom int // where the value starts in the line
	line    []byte
}

func parseLine(line []byte) lineFields {
	lf := lineFields{line: line, nameEnd: len(line), valFrom: len(line)}
	if line[0] == ':' {
		lf.kind = lineComment
		return lf
	}
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		lf.nameEnd, lf.valFrom = i, i+1
		if lf.valFrom < len(line) && line[lf.valFrom] == ' ' {
			lf.valFrom++
		}
	}
	switch string(line[:lf.nameEnd]) {
	case "data":
		lf.kind = lineData
	case "id":
		lf.kind = lineID
	case "event":
		lf.kind = lineEvent
	case "retry":
		lf.kind = lineRetry
	default:
		lf.kind = lineIgnored
	}
	return lf
}

func (lf lineFields) value() []byte { return lf.line[lf.valFrom:] }

// keep reports whether a client acts on the line (or, for a comment,
// whether it keeps the connection alive). The rest is dropped so that a
// lenient client cannot act on what the gateway ignored.
func (lf lineFields) keep() bool {
	switch lf.kind {
	case lineComment, lineData, lineEvent:
		return true
	case lineID:
		return bytes.IndexByte(lf.value(), 0) < 0
	case lineRetry:
		return validRetry(lf.value())
	}
	return false
}

// validRetry is the spec's "only ASCII digits". An empty value holds no
// number; dropping it leaves no client a reading of it to differ on.
func validRetry(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// valueAt is where the value starts in the canonical line.
func (lf lineFields) valueAt() int {
	if lf.kind == lineComment {
		return 1
	}
	return lf.nameEnd + len(": ")
}

// canonical rewrites the line at raw[start:] in place into its canonical
// form, "name: value\n" (a comment stays as it is), so that the value
// survives a client's removal of one leading space.
func (lf lineFields) canonical(raw []byte, start int) []byte {
	if lf.kind == lineComment {
		return append(raw, '\n')
	}
	oldLen := len(raw)
	shift := lf.valueAt() - lf.valFrom // 0, 1 or 2
	raw = append(raw, "   "[:shift+1]...)
	copy(raw[start+lf.valueAt():], raw[start+lf.valFrom:oldLen])
	raw[start+lf.nameEnd] = ':'
	raw[start+lf.nameEnd+1] = ' '
	raw[len(raw)-1] = '\n'
	return raw
}

// WithData re-encodes the event with new data in place of its data lines,
// keeping its comments and other fields in order.
func (ev Event) WithData(data []byte) []byte {
	out := make([]byte, 0, len(ev.Raw)+len(data)+16)
	wroteData, ended := false, false
	splitLines(ev.Raw, func(line []byte) bool {
		if len(line) == 0 {
			if len(out) == 0 && !wroteData {
				return true // blank lines before an event belong to none
			}
			ended = true
			return false
		}
		lf := parseLine(line)
		switch {
		case !lf.keep():
		case lf.kind == lineData:
			if !wroteData {
				out = appendData(out, data)
				wroteData = true
			}
		default:
			start := len(out)
			out = append(out, line...)
			out = lf.canonical(out, start)
		}
		return true
	})
	if !wroteData {
		out = appendData(out, data)
	}
	if ended || len(ev.Raw) == 0 {
		out = append(out, '\n')
	}
	return out
}

// EncodeEvent writes a data-only event, for messages the gateway itself
// adds to a stream (denials of batch members).
func EncodeEvent(data []byte) []byte {
	return append(appendData(make([]byte, 0, len(data)+16), data), '\n')
}

// appendData writes data as one "data: " line per line of it. A CR in data
// cannot be sent (it ends a line), so CR and CRLF are sent as line breaks:
// JSON reads every one of them as the same whitespace, and raw CR cannot
// occur inside a JSON string.
func appendData(out, data []byte) []byte {
	for {
		end := bytes.IndexAny(data, "\r\n")
		if end < 0 {
			out = append(out, "data: "...)
			out = append(out, data...)
			return append(out, '\n')
		}
		out = append(out, "data: "...)
		out = append(out, data[:end]...)
		out = append(out, '\n')
		if data[end] == '\r' && end+1 < len(data) && data[end+1] == '\n' {
			end++
		}
		data = data[end+1:]
	}
}

// splitLines calls fn with each line of b, split at CRLF, LF or CR, until
// fn returns false. A last line without a line end is passed too.
func splitLines(b []byte, fn func(line []byte) bool) {
	for len(b) > 0 {
		end := bytes.IndexAny(b, "\r\n")
		if end < 0 {
			fn(b)
			return
		}
		if !fn(b[:end]) {
			return
		}
		if b[end] == '\r' && end+1 < len(b) && b[end+1] == '\n' {
			end++
		}
		b = b[end+1:]
	}
}
