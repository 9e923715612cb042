package identity

import (
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestSigningKeysFilter(t *testing.T) {
	publicKey := func(kid, use string) jwk.Key {
		pub, err := newRSAKey(t).PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
		if use != "" {
			if err := pub.Set(jwk.KeyUsageKey, use); err != nil {
				t.Fatal(err)
			}
		}
		return pub
	}
	hmac, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := hmac.Set(jwk.KeyIDKey, "oct"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		keys     []jwk.Key
		wantKids []string
		wantErr  bool
	}{
		{name: "sig and unspecified use kept", keys: []jwk.Key{publicKey("sig", "sig"), publicKey("any", "")}, wantKids: []string{"sig", "any"}},
		{name: "enc and oct dropped", keys: []jwk.Key{hmac, publicKey("enc", "enc"), publicKey("sig", "sig")}, wantKids: []string{"sig"}},
		{name: "nothing usable", keys: []jwk.Key{hmac, publicKey("enc", "enc")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := jwk.NewSet()
			for _, k := range tt.keys {
				if err := in.AddKey(k); err != nil {
					t.Fatal(err)
				}
			}
			out, err := signingKeys(in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("signingKeys kept %d keys, want an error", out.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for i := range out.Len() {
				k, _ := out.Key(i)
				kids = append(kids, kidOf(k))
			}
			if len(kids) != len(tt.wantKids) {
				t.Fatalf("kids = %v, want %v", kids, tt.wantKids)
			}
			for i := range kids {
				if kids[i] != tt.wantKids[i] {
					t.Errorf("kids = %v, want %v", kids, tt.wantKids)
				}
			}
		})
	}
}
