package gateway

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadAllSized: a declared size only sizes the first buffer; the reply
// is read whole whatever it declared, and the limit holds.
func TestReadAllSized(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	for _, declared := range []int{0, 1, 10, 999, 1000, 1001, 4096} {
		got, err := readAllSized(iotest.HalfReader(strings.NewReader(body)), 1<<20, declared)
		if err != nil || string(got) != body {
			t.Fatalf("declared %d: %d bytes, %v", declared, len(got), err)
		}
	}
	if _, err := readAllSized(strings.NewReader(body), 999, 10); err == nil {
		t.Fatal("a reply over the limit was read")
	}
	if got, err := readAllSized(strings.NewReader(body), 1000, 1000); err != nil || len(got) != 1000 {
		t.Fatalf("a reply at the limit: %d bytes, %v", len(got), err)
	}
	if _, err := readAllSized(iotest.ErrReader(iotest.ErrTimeout), 1000, 10); err != iotest.ErrTimeout {
		t.Fatalf("a read error: %v", err)
	}
	if got, _ := readAllSized(bytes.NewReader(nil), 1000, 0); len(got) != 0 {
		t.Fatal("an empty reply is not empty")
	}
}
