package ijson

import "testing"

func TestAppendSorted(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"scalars as Encode", `[1.50,"a\u0062",true,null]`, `[1.50,"ab",true,null]`},
		{"members sorted", `{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{"nested objects sorted", `{"z":{"y":[{"d":1,"c":2}],"x":0},"a":[]}`, `{"a":[],"z":{"x":0,"y":[{"c":2,"d":1}]}}`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},
		{"byte order of names", `{"é":1,"Z":2,"a":3}`, `{"Z":2,"a":3,"é":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.AppendSorted(nil)); got != tt.want {
				t.Errorf("AppendSorted(%s) = %s, want %s", tt.in, got, tt.want)
			}
			// The value itself is left in its original order.
			if got := string(v.Encode()); got != string(mustParse(t, tt.in).Encode()) {
				t.Errorf("AppendSorted changed the value: %s", got)
			}
		})
	}
}

func mustParse(t *testing.T, s string) Value {
	t.Helper()
	v, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
