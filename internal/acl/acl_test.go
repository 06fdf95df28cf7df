package acl

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func checkAll(a Authorizer) []bool {
	return []bool{
		a.KeyRead("k"), a.KeyWrite("k"), a.KeyWritePrefix("k"), a.KeyList("k"),
		a.NodeRead("n"), a.NodeWrite("n"), a.ServiceRead("s"), a.ServiceWrite("s"),
		a.AgentRead("n"), a.AgentWrite("n"), a.OperatorRead(), a.OperatorWrite(),
	}
}

func TestAuthorizer_Fixed(t *testing.T) {
	for _, v := range checkAll(AllowAll()) {
		require.True(t, v)
	}
	for _, v := range checkAll(DenyAll()) {
		require.False(t, v)
	}
}

func TestResolver(t *testing.T) {
	tests := []struct {
		name  string
		r     Resolver
		allow bool
		err   error
	}{
		{"allow-all", AllowAllResolver(), true, nil},
		{"static-deny", StaticResolver(DenyAll()), false, nil},
		{"func-error", ResolverFunc(func(string) (Authorizer, error) { return nil, ErrTokenNotFound }), false, ErrTokenNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, tok := range []string{"", "secret"} {
				a, err := tc.r.ResolveToken(tok)
				if tc.err != nil {
					require.True(t, errors.Is(err, tc.err))
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tc.allow, a.KeyWrite("x"))
			}
		})
	}
}
