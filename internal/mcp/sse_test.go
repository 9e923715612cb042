package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEventReader(t *testing.T) {
	stream := ": ping\n\n" +
		"event: message\r\nid: 42\r\ndata: {\"a\":1}\r\n\r\n" +
		"\n" +
		"data: line one\ndata: line two\n\n" +
		"data: partial"
	r := NewEventReader(strings.NewReader(stream))
	comment, err := r.Next()
	if err != nil || comment.HasData || string(comment.Raw) != ": ping\n\n" {
		t.Fatalf("comment %+v %v", comment, err)
	}
	ev, err := r.Next()
	if err != nil || ev.Name != "message" || ev.ID != "42" || string(ev.Data) != `{"a":1}` {
		t.Fatalf("event %+v %v", ev, err)
	}
	// Raw is the canonical re-encoding (it used to be the bytes received,
	// CRLF included).
	if string(ev.Raw) != "event: message\nid: 42\ndata: {\"a\":1}\n\n" {
		t.Fatalf("canonical Raw %q", ev.Raw)
	}
	multi, err := r.Next()
	if err != nil || string(multi.Data) != "line one\nline two" {
		t.Fatalf("multi-line data %q %v", multi.Data, err)
	}
	last, err := r.Next()
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(last.Data) != "partial" {
		t.Fatalf("partial last event %+v %v", last, err)
	}
	// No blank line: a client does not dispatch the unfinished event either.
	if string(last.Raw) != "data: partial\n" {
		t.Fatalf("partial Raw %q", last.Raw)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the end: %v", err)
	}
}

// wantEvent is an event as a test expects it; raw is its canonical encoding.
type wantEvent struct {
	raw, data string
	hasData   bool
	id, name  string
}

func TestEventReaderParsesAsTheSpec(t *testing.T) {
	ab := []wantEvent{
		{raw: "data: a\n\n", data: "a", hasData: true},
		{raw: "data: b\n\n", data: "b", hasData: true},
	}
	cases := []struct {
		name  string
		in    string
		want  []wantEvent
		final error // after the events
	}{
		{"LF", "id: 1\nevent: e\ndata: a\n\n", []wantEvent{{raw: "id: 1\nevent: e\ndata: a\n\n", data: "a", hasData: true, id: "1", name: "e"}}, io.EOF},
		{"CRLF", "id: 1\r\nevent: e\r\ndata: a\r\n\r\n", []wantEvent{{raw: "id: 1\nevent: e\ndata: a\n\n", data: "a", hasData: true, id: "1", name: "e"}}, io.EOF},
		{"CR", "id: 1\revent: e\rdata: a\r\r", []wantEvent{{raw: "id: 1\nevent: e\ndata: a\n\n", data: "a", hasData: true, id: "1", name: "e"}}, io.EOF},
		// Where an LF-only reader sees one event with one data line, a
		// client sees two events: the second one must be filtered too.
		{"CR splits events", "data: {\"x\":1}\r\rdata: {\"y\":2}\n\n", []wantEvent{
			{raw: "data: {\"x\":1}\n\n", data: `{"x":1}`, hasData: true},
			{raw: "data: {\"y\":2}\n\n", data: `{"y":2}`, hasData: true},
		}, io.EOF},
		{"mixed", "data: a\r\ndata: b\rdata: c\n\r\n", []wantEvent{{raw: "data: a\ndata: b\ndata: c\n\n", data: "a\nb\nc", hasData: true}}, io.EOF},
		{"CR then CRLF", "data: a\r\r\ndata: b\n\n", ab, io.EOF},
		{"LF then CR", "data: a\n\rdata: b\n\n", ab, io.EOF},
		{"LF then CRLF", "data: a\n\r\ndata: b\r\n\n", ab, io.EOF},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", ab[:1], io.EOF},
		// Only one BOM is skipped: the second starts a field name nobody knows.
		{"two BOMs", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", ab[1:], io.EOF},
		{"BOM later", "data: a\n\n\xEF\xBB\xBFdata: x\n\ndata: b\n\n", ab, io.EOF},
		{"comment block", ": ping\n\n", []wantEvent{{raw: ": ping\n\n"}}, io.EOF},
		{"comments kept in order", ":\n: one\ndata: a\n:two\n\n", []wantEvent{{raw: ":\n: one\ndata: a\n:two\n\n", data: "a", hasData: true}}, io.EOF},
		{"field without colon", "data\n\n", []wantEvent{{raw: "data: \n\n", data: "", hasData: true}}, io.EOF},
		{"two empty data lines", "data\ndata:\n\n", []wantEvent{{raw: "data: \ndata: \n\n", data: "\n", hasData: true}}, io.EOF},
		{"id without colon", "id\n\n", []wantEvent{{raw: "id: \n\n"}}, io.EOF},
		{"no space", "data:a\n\n", ab[:1], io.EOF},
		{"only one space removed", "data:  a\n\n", []wantEvent{{raw: "data:  a\n\n", data: " a", hasData: true}}, io.EOF},
		{"colon in value", "data: a:b\n\n", []wantEvent{{raw: "data: a:b\n\n", data: "a:b", hasData: true}}, io.EOF},
		{"multi-line data", "data: {\ndata:   \"a\": 1\ndata: }\n\n", []wantEvent{{raw: "data: {\ndata:   \"a\": 1\ndata: }\n\n", data: "{\n  \"a\": 1\n}", hasData: true}}, io.EOF},
		{"id with NUL ignored", "id: 1\nid: a\x00b\ndata: x\n\n", []wantEvent{{raw: "id: 1\ndata: x\n\n", data: "x", hasData: true, id: "1"}}, io.EOF},
		{"only an id with NUL", "id: \x00\n\ndata: a\n\n", ab[:1], io.EOF},
		{"last id and event win", "id: 1\nevent: a\nid: 2\nevent: b\n\n", []wantEvent{{raw: "id: 1\nevent: a\nid: 2\nevent: b\n\n", id: "2", name: "b"}}, io.EOF},
		{"retry", "retry: 3000\nretry: x1\nretry:\ndata: a\n\n", []wantEvent{{raw: "retry: 3000\ndata: a\n\n", data: "a", hasData: true}}, io.EOF},
		{"unknown fields dropped", "foo: bar\nData: x\n data: y\ndata : z\ndata: a\n\n", ab[:1], io.EOF},
		{"stray blank lines", "\n\r\n\r\ndata: a\n\n\n\r\n", ab[:1], io.EOF},
		{"empty", "", nil, io.EOF},
		{"partial", "data: a\nid: 2", []wantEvent{{raw: "data: a\nid: 2\n", data: "a", hasData: true, id: "2"}}, io.ErrUnexpectedEOF},
		{"CR at the end ends a line, not the event", "data: a\r", []wantEvent{{raw: "data: a\n", data: "a", hasData: true}}, io.ErrUnexpectedEOF},
		{"CR at the end ends the event", "data: a\n\r", ab[:1], io.EOF},
		{"partial of dropped lines", "data: a\n\nfoo", ab[:1], io.EOF},
	}
	readers := map[string]func(string) io.Reader{
		"whole":      func(s string) io.Reader { return strings.NewReader(s) },
		"one byte":   func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half reads": func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				r := NewEventReader(mk(c.in))
				var got []wantEvent
				var err error
				for range len(c.in) + 2 {
					var ev Event
					ev, err = r.Next()
					if len(ev.Raw) > 0 {
						got = append(got, wantEvent{string(ev.Raw), string(ev.Data), ev.HasData, ev.ID, ev.Name})
					}
					if err != nil {
						break
					}
				}
				if err != c.final {
					t.Fatalf("final error %v, want %v", err, c.final)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("events\n got %+v\nwant %+v", got, c.want)
				}
			})
		}
	}
}

// chunkReader returns its chunks one per Read, then fails: a test sees
// whether the reader asked for more than it needed.
type chunkReader struct{ chunks []string }

var errReadPastChunks = errors.New("read past the chunks")

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, errReadPastChunks
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// A CR at the end of one read and an LF at the start of the next are one
// line end; taken as two, the LF would end the event early.
func TestEventReaderCRLFAcrossReads(t *testing.T) {
	r := NewEventReader(&chunkReader{chunks: []string{"data: a\r", "\ndata: b\r", "\n\r", "\n"}})
	ev, err := r.Next()
	if err != nil || string(ev.Data) != "a\nb" || string(ev.Raw) != "data: a\ndata: b\n\n" {
		t.Fatalf("event %q (raw %q) %v, want one event with data \"a\\nb\"", ev.Data, ev.Raw, err)
	}
}

// An event that ends with CR is dispatched without waiting for the next
// byte (which would stall a live stream until the next event).
func TestEventReaderDispatchesAtCRWithoutReadingAhead(t *testing.T) {
	r := NewEventReader(&chunkReader{chunks: []string{"data: a\r\r"}})
	ev, err := r.Next()
	if err != nil || string(ev.Data) != "a" {
		t.Fatalf("event %q %v", ev.Data, err)
	}
	if _, err := r.Next(); !errors.Is(err, errReadPastChunks) {
		t.Fatalf("next read: %v", err)
	}
}

func TestEventWithDataKeepsOtherLines(t *testing.T) {
	cases := []struct {
		name, raw, data, want string
	}{
		{"hand-made event", "event: message\nid: 7\ndata: {\"old\":1}\ndata: more\n\n", `{"new":2}`, "event: message\nid: 7\ndata: {\"new\":2}\n\n"},
		{"order and comments kept", ": c\nid: 7\ndata: x\nretry: 10\nevent: e\n\n", "y", ": c\nid: 7\ndata: y\nretry: 10\nevent: e\n\n"},
		{"multi-line data", "data: x\n\n", "a\nb", "data: a\ndata: b\n\n"},
		{"CR in data is a line break", "data: x\n\n", "a\r\nb\rc", "data: a\ndata: b\ndata: c\n\n"},
		{"leading space kept", "data: x\n\n", " a", "data:  a\n\n"},
		{"no data yet", "id: 1\n\n", "a", "id: 1\ndata: a\n\n"},
		{"partial stays partial", "id: 1\ndata: x\n", "a", "id: 1\ndata: a\n"},
		{"dropped lines stay dropped", "foo: 1\nid: a\x00\ndata: x\n\n", "a", "data: a\n\n"},
		{"hand-made with CR", "id: 1\rdata: x\r\r", "a", "id: 1\ndata: a\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(Event{Raw: []byte(c.raw)}.WithData([]byte(c.data))); got != c.want {
				t.Fatalf("WithData = %q, want %q", got, c.want)
			}
		})
	}
	for data, want := range map[string]string{
		"a\nb":    "data: a\ndata: b\n\n",
		"":        "data: \n\n",
		" x":      "data:  x\n\n",
		"a\r\n\r": "data: a\ndata: \ndata: \n\n",
	} {
		if got := string(EncodeEvent([]byte(data))); got != want {
			t.Fatalf("EncodeEvent(%q) = %q, want %q", data, got, want)
		}
	}
}

func TestEventTooLarge(t *testing.T) {
	r := NewEventReader(io.MultiReader(strings.NewReader("data: "), strings.NewReader(strings.Repeat("x", MaxEventBytes+1))))
	if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("oversized event: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("after an oversized event (the position is lost): %v", err)
	}
}

// The cap counts what the reader holds: the canonical encoding, plus the
// joined data when it spans lines. Lines the reader drops are not held.
func TestEventCapCountsWhatIsHeld(t *testing.T) {
	const limit = 64
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"exactly the cap", "data: " + strings.Repeat("x", limit-8) + "\n\n", true},
		{"one byte over", "data: " + strings.Repeat("x", limit-7) + "\n\n", false},
		{"canonical form counts", "data:" + strings.Repeat("x", limit-7) + "\n\n", false},
		// "data: x\ndata: y\n\n" (17) + "x\ny" joined (3)
		{"joined data counts", "data: " + strings.Repeat("x", 22) + "\ndata: " + strings.Repeat("y", 22) + "\n\n", false},
		{"joined data within", "data: " + strings.Repeat("x", 10) + "\ndata: " + strings.Repeat("y", 10) + "\n\n", true},
		{"comments count", strings.Repeat(": keepalive\n", 6) + "\n", false},
		{"dropped lines do not", strings.Repeat("foo: bar\n", 40) + "data: a\n\n", true},
		{"a long dropped line does", "foo: " + strings.Repeat("x", limit) + "\ndata: a\n\n", false},
		{"a long line without end", "data: " + strings.Repeat("x", 4*limit), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewEventReader(strings.NewReader(c.in))
			r.limit = limit
			ev, err := r.Next()
			if c.ok && (err != nil || len(ev.Raw) > limit) {
				t.Fatalf("event %q: %v", ev.Raw, err)
			}
			if !c.ok && !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("got %q, %v; want ErrEventTooLarge", ev.Raw, err)
			}
		})
	}
}

// endless yields prefix then 'a' up to n bytes, counting what was read.
type endless struct {
	prefix  string
	n, read int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.n-e.read)]
	i := 0
	for ; i < len(p) && e.read+int64(i) < int64(len(e.prefix)); i++ {
		p[i] = e.prefix[e.read+int64(i)]
	}
	for ; i < len(p); i++ {
		p[i] = 'a'
	}
	e.read += int64(len(p))
	return len(p), nil
}

// A line longer than the cap fails as soon as the cap is passed: the reader
// neither reads the rest of the line nor holds much more than the cap.
func TestEventReaderEndlessLineFailsEarly(t *testing.T) {
	const offered = 200 << 20
	const bound = MaxEventBytes + readBufferSize + 64
	for _, prefix := range []string{"data: ", ": ", "foo: ", ""} {
		t.Run(fmt.Sprintf("%q", prefix), func(t *testing.T) {
			src := &endless{prefix: prefix, n: offered}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := NewEventReader(src).Next()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("endless line: %v", err)
			}
			if src.read > bound {
				t.Fatalf("read %d bytes of a %d-byte line, want at most %d", src.read, offered, bound)
			}
			// Growing by doubling allocates about twice the cap in all.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*MaxEventBytes {
				t.Fatalf("allocated %d MiB for one refused line", alloc>>20)
			}
		})
	}
}

// refBlock is one block of lines as a client reads it.
type refBlock struct {
	data     string
	hasData  bool // the data buffer was not empty: the event is dispatched
	id       string
	hasID    bool
	name     string
	hasName  bool
	retry    string
	comments []string
	lastID   string // the client's last event ID after the block
	partial  bool   // the stream ended before its blank line
}

// refParse is a deliberately simple reading of a whole stream, written from
// the spec's text and sharing nothing with EventReader: strip one BOM, turn
// CRLF then lone CR into LF, split, and run the field rules. A block is
// reported when a client acts on one of its lines, or it holds a comment.
// Like EventReader, it reads an unterminated last line as a line.
func refParse(in []byte) []refBlock {
	s := strings.TrimPrefix(string(in), "\uFEFF")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	var out []refBlock
	var cur refBlock
	var dataBuf string
	seen := false
	lastID := ""
	flush := func(partial bool) {
		if seen {
			if dataBuf != "" {
				cur.hasData = true
				cur.data = strings.TrimSuffix(dataBuf, "\n")
			}
			cur.lastID, cur.partial = lastID, partial
			out = append(out, cur)
		}
		cur, dataBuf, seen = refBlock{}, "", false
	}
	for i, line := range lines {
		if line == "" {
			if i < len(lines)-1 {
				flush(false)
			}
			continue
		}
		if line[0] == ':' {
			cur.comments = append(cur.comments, line[1:])
			seen = true
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "data":
			dataBuf += value + "\n"
			seen = true
		case "id":
			if !strings.Contains(value, "\x00") {
				cur.id, cur.hasID, lastID, seen = value, true, value, true
			}
		case "event":
			cur.name, cur.hasName, seen = value, true, true
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				cur.retry, seen = value, true
			}
		}
	}
	flush(true)
	return out
}

// readAllEvents reads events until an error, returning the events and the
// error that ended them (io.EOF or io.ErrUnexpectedEOF at a normal end).
func readAllEvents(r *EventReader, max int) ([]Event, error) {
	var evs []Event
	for range max {
		ev, err := r.Next()
		if len(ev.Raw) > 0 {
			evs = append(evs, ev)
		}
		if err != nil {
			return evs, err
		}
	}
	return evs, errors.New("no end")
}

func FuzzEventReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "data: a\r\n\r\n", "data: a\r\rdata: b\n\n", "data: a\r\r\ndata: b\n\n",
		"data: a\n\rdata: b\n\n", "id: 1\revent: e\rdata: a\r\r",
		"\xEF\xBB\xBFdata: a\n\n", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n",
		": ping\n\n", ":\n: one\ndata: a\n:two\n\n", "data\n\n", "data\ndata:\n\n", "id\n\n",
		"data:a\n\n", "data:  a\n\n", "id: 1\nid: a\x00b\ndata: x\n\n", "id: \x00\n\n",
		"retry: 3000\nretry: x1\nretry:\ndata: a\n\n", "foo: bar\nData: x\n data: y\ndata: a\n\n",
		"\n\r\n\r\ndata: a\n\n\n\r\n", "data: a\nid: 2", "data: a\r", "data: a\n\r", "",
		"data: {\ndata:   \"a\": 1\ndata: }\n\n", "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\"}\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		evs, err := readAllEvents(NewEventReader(bytes.NewReader(in)), len(in)+2)
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			t.Fatalf("reading %q: %v", in, err)
		}

		// The reader's reading is the spec's.
		want := refParse(in)
		if len(evs) != len(want) {
			t.Fatalf("%q: %d events, reference reads %d", in, len(evs), len(want))
		}
		var forwarded []byte
		for i, ev := range evs {
			w := want[i]
			if string(ev.Data) != w.data || ev.HasData != w.hasData || ev.ID != w.id || ev.Name != w.name {
				t.Fatalf("%q event %d: data %q/%v id %q name %q; reference %q/%v %q %q", in, i, ev.Data, ev.HasData, ev.ID, ev.Name, w.data, w.hasData, w.id, w.name)
			}
			if partial := i == len(evs)-1 && err == io.ErrUnexpectedEOF; partial != w.partial {
				t.Fatalf("%q event %d: partial %v, reference %v", in, i, partial, w.partial)
			}
			forwarded = append(forwarded, ev.Raw...)
		}

		// What the gateway forwards reads, to an independent parser, as
		// what the gateway decided on.
		if again := refParse(forwarded); !reflect.DeepEqual(again, want) {
			t.Fatalf("%q forwarded as %q reads\n%+v\nnot\n%+v", in, forwarded, again, want)
		}

		// Reading one byte at a time changes nothing.
		slow, slowErr := readAllEvents(NewEventReader(iotest.OneByteReader(bytes.NewReader(in))), len(in)+2)
		if slowErr != err || !reflect.DeepEqual(slow, evs) {
			t.Fatalf("%q one byte at a time: %v %v", in, slowErr, slow)
		}

		// A rewrite changes the data and nothing else a client reads.
		for i, ev := range evs {
			got := refParse(ev.WithData(in))
			w := want[i]
			w.hasData, w.data = true, strings.ReplaceAll(strings.ReplaceAll(string(in), "\r\n", "\n"), "\r", "\n")
			w.lastID = ""
			if w.hasID {
				w.lastID = w.id
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], w) {
				t.Fatalf("%q: event %q WithData reads %+v, want %+v", in, ev.Raw, got, w)
			}
		}
		if got := refParse(EncodeEvent(in)); len(got) != 1 || !got[0].hasData || got[0].data != strings.ReplaceAll(strings.ReplaceAll(string(in), "\r\n", "\n"), "\r", "\n") {
			t.Fatalf("EncodeEvent(%q) reads %+v", in, got)
		}

		// Under a small cap the reader returns a prefix of the same events,
		// each within the cap, or stops with ErrEventTooLarge.
		const limit = 48
		small := NewEventReader(bytes.NewReader(in))
		small.limit = limit
		capped, cerr := readAllEvents(small, len(in)+2)
		if cerr != err && !errors.Is(cerr, ErrEventTooLarge) {
			t.Fatalf("%q under a cap: %v", in, cerr)
		}
		if len(capped) > len(evs) || (cerr == err && len(capped) != len(evs)) {
			t.Fatalf("%q under a cap: %d events of %d", in, len(capped), len(evs))
		}
		for i, ev := range capped {
			held, dataLines := len(ev.Raw), 0
			for _, line := range strings.Split(string(ev.Raw), "\n") {
				if strings.HasPrefix(line, "data: ") {
					dataLines++
				}
			}
			if dataLines > 1 {
				held += len(ev.Data)
			}
			if held > limit || !reflect.DeepEqual(ev, evs[i]) {
				t.Fatalf("%q under a cap: event %q (holding %d)", in, ev.Raw, held)
			}
		}
	})
}
