package httpapi

import (
	"testing"

	"github.com/cairn-io/cairn/internal/rpc"
)

// FuzzTxnBody: /v1/txn and /v1/session/create bodies are untrusted; any
// input gets a response with one of the endpoint's statuses, never a
// panic or a 500 from parsing.
func FuzzTxnBody(f *testing.F) {
	for _, s := range []string{
		`[{"KV":{"Verb":"set","Key":"a","Value":"aGk="}}]`,
		`[{"KV":{"Verb":"get-tree","Key":""}},{"Node":{"Verb":"get","Node":{"Node":"n"}}}]`,
		`[{"Service":{"Verb":"set","Node":"n","Service":{"Service":"web","Port":-1}}}]`,
		`[{"Check":{"Verb":"cas","Check":{"Node":"n","CheckID":"c","Definition":{"Interval":"10s"}}}}]`,
		`[{"KV":{"Verb":"lock","Key":"k","Session":"s","Index":18446744073709551615}}]`,
		`[{}]`, `[null]`, `{}`, `null`, `[`, `[{"KV":{"Value":"not base64"}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env := newTestEnv(t)
		env.caller.on(rpc.MethodTxnApply, func(args, reply any) error { return nil })
		env.caller.on(rpc.MethodTxnRead, func(args, reply any) error { return nil })
		env.caller.on(rpc.MethodSessionApply, func(args, reply any) error { return nil })
		rec := env.do("PUT", "/v1/txn", string(data))
		switch rec.Code {
		case 200, 400, 409, 413:
		default:
			t.Fatalf("txn body %q: status %d: %s", data, rec.Code, rec.Body.String())
		}
		rec = env.do("PUT", "/v1/session/create", string(data))
		switch rec.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("session body %q: status %d: %s", data, rec.Code, rec.Body.String())
		}
	})
}
