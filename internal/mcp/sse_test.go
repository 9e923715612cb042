package mcp

import (
	"errors"
	"io"
	"strings"
	"testing"
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
	multi, err := r.Next()
	if err != nil || string(multi.Data) != "line one\nline two" {
		t.Fatalf("multi-line data %q %v", multi.Data, err)
	}
	last, err := r.Next()
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(last.Data) != "partial" {
		t.Fatalf("partial last event %+v %v", last, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the end: %v", err)
	}
}

func TestEventWithDataKeepsOtherLines(t *testing.T) {
	ev := Event{Raw: []byte("event: message\nid: 7\ndata: {\"old\":1}\ndata: more\n\n")}
	out := string(ev.WithData([]byte(`{"new":2}`)))
	if out != "event: message\nid: 7\ndata: {\"new\":2}\n\n" {
		t.Fatalf("rewritten event %q", out)
	}
	if got := string(EncodeEvent([]byte("a\nb"))); got != "data: a\ndata: b\n\n" {
		t.Fatalf("EncodeEvent %q", got)
	}
}

func TestEventTooLarge(t *testing.T) {
	r := NewEventReader(io.MultiReader(strings.NewReader("data: "), strings.NewReader(strings.Repeat("x", MaxEventBytes+1))))
	if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("oversized event: %v", err)
	}
}
