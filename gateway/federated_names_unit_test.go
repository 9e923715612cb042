package gateway

import "testing"

func TestFederatedNamesRoundTrip(t *testing.T) {
	fc := &fedCall{sessions: federatedSession{"notes": "", "notes_v2": "", "Employees": "", "everything": ""}}
	names := []struct{ backend, name string }{{"notes", "echo"}, {"notes_v2", "echo"}, {"notes", "v2__echo"}, {"Employees", "get"}}
	for _, tc := range names {
		shown, ok := fc.nameOut(tc.backend, tc.name)
		b, n, back := fc.nameIn(shown)
		// "notes__v2__echo" begins with "notes__" only ("notes_v2__"
		// differs), so it is notes'.
		if !ok || !back || b != tc.backend || n != tc.name {
			t.Errorf("nameIn(nameOut(%q, %q) = %q) = %q, %q, %v", tc.backend, tc.name, shown, b, n, back)
		}
	}
	uris := []struct {
		backend, uri string
		shown        bool
	}{
		{"notes", "file:///tmp/a.txt", true},
		{"Employees", "test://static/{id}", true},
		{"everything", "demo+x.y-z:opaque", true},
		{"notes_v2", "file:///a", true}, // labelled notes-v2: "_" has no place in a scheme
		{"notes", "relative/path", false},
		{"notes", "1bad:scheme", false},
		{"notes", ":empty", false},
	}
	for _, tc := range uris {
		shown, ok := fc.uriOut(tc.backend, tc.uri)
		if ok != tc.shown {
			t.Errorf("uriOut(%q, %q) shown = %v, want %v", tc.backend, tc.uri, ok, tc.shown)
			continue
		}
		if !ok {
			continue
		}
		b, u, ok := fc.uriIn(shown)
		if !ok || b != tc.backend || u != tc.uri {
			t.Errorf("uriIn(%q) = %q, %q, %v; want %q, %q", shown, b, u, ok, tc.backend, tc.uri)
		}
	}
	for _, shown := range []string{"file:///a", "mcpgw.unknown+file:///a", "mcpgw.notes+noscheme", "mcpgw.notes", "MCPGW.NOTES+file:///a-ok"} {
		b, u, ok := fc.uriIn(shown)
		if want := shown == "MCPGW.NOTES+file:///a-ok"; ok != want {
			t.Errorf("uriIn(%q) = %q, %q, %v; want ok %v", shown, b, u, ok, want)
		}
	}
	twins := &fedCall{sessions: federatedSession{"Notes": "", "notes": ""}}
	if _, ok := (&fedCall{sessions: federatedSession{"a_b": "", "a-b": ""}}).uriOut("a_b", "file:///x"); ok {
		t.Errorf("uriOut showed a URI of a_b beside a-b, whose labels are one")
	}
	if b, _, ok := twins.uriIn("mcpgw.notes+file:///a"); ok {
		t.Errorf("uriIn with two backends of one label chose %q, want refused", b)
	}
}

// TestFederatedUnprefixedBackend: with one backend unprefixed, its names
// and URIs are shown as they are, except those that would read as another
// backend's (its name begins another's prefix, its URI is in an mcpgw.*
// scheme): those are not shown, so routing never guesses.
func TestFederatedUnprefixedBackend(t *testing.T) {
	fc := &fedCall{sessions: federatedSession{"everything": "", "notes": "", "hr": ""},
		prefixes: map[string]string{"everything": "", "notes": "notes__", "hr": "h."}}
	for _, tc := range []struct {
		backend, name, shown string
		ok                   bool
	}{
		{"everything", "echo", "echo", true},
		{"everything", "notes__x", "", false}, // would route to notes
		{"everything", "h.x", "", false},      // would route to hr
		{"everything", "notes_x", "notes_x", true},
		{"notes", "echo", "notes__echo", true},
		{"hr", "get", "h.get", true},
	} {
		shown, ok := fc.nameOut(tc.backend, tc.name)
		if ok != tc.ok || ok && shown != tc.shown {
			t.Errorf("nameOut(%q, %q) = %q, %v; want %q, %v", tc.backend, tc.name, shown, ok, tc.shown, tc.ok)
		}
		if !ok {
			continue
		}
		if b, n, back := fc.nameIn(shown); !back || b != tc.backend || n != tc.name {
			t.Errorf("nameIn(%q) = %q, %q, %v", shown, b, n, back)
		}
	}
	for _, tc := range []struct {
		backend, uri, shown string
		ok                  bool
	}{
		{"everything", "test://static/resource/1", "test://static/resource/1", true},
		{"everything", "mcpgw.notes+file:///a", "", false},
		{"everything", "MCPGW.x:y", "", false},
		{"notes", "file:///a", "mcpgw.notes+file:///a", true},
	} {
		shown, ok := fc.uriOut(tc.backend, tc.uri)
		if ok != tc.ok || ok && shown != tc.shown {
			t.Errorf("uriOut(%q, %q) = %q, %v; want %q, %v", tc.backend, tc.uri, shown, ok, tc.shown, tc.ok)
		}
	}
	// The unprefixed backend's label routes nowhere: its URIs are never labelled.
	if b, _, ok := fc.uriIn("mcpgw.everything+test://x"); ok {
		t.Errorf("a labelled URI of the unprefixed backend routed to %q", b)
	}
	// Without an unprefixed backend, a bare name or URI routes nowhere.
	plain := &fedCall{sessions: federatedSession{"notes": ""}}
	if _, _, ok := plain.nameIn("echo"); ok {
		t.Error("a bare name routed without an unprefixed backend")
	}
	if _, _, ok := plain.uriIn("file:///a"); ok {
		t.Error("a bare URI routed without an unprefixed backend")
	}
	// Two non-empty prefixes that begin one another: refused, not guessed.
	clash := &fedCall{sessions: federatedSession{"a": "", "b": ""}, prefixes: map[string]string{"a": "x", "b": "x."}}
	if b, _, ok := clash.nameIn("x.tool"); ok {
		t.Errorf("an ambiguous name routed to %q", b)
	}
}
