package audit

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestCursor(t *testing.T) {
	c := EncodeCursor(1700000000123456, "0190-abc:def")
	at, id, err := DecodeCursor(c)
	if err != nil || at != 1700000000123456 || id != "0190-abc:def" {
		t.Fatalf("round trip = %d %q %v", at, id, err)
	}
	for _, bad := range []string{"", "@@@", encodeCursorRaw("v2:1:x"), encodeCursorRaw("v1:abc:x"), encodeCursorRaw("v1:1:"), encodeCursorRaw("v1:1"), strings.Repeat("A", 600)} {
		if _, _, err := DecodeCursor(bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("DecodeCursor(%q) err = %v, want ErrInvalidQuery", bad, err)
		}
	}
}

func encodeCursorRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
