package robustness

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kind is the kind of a KV operation.
type Kind string

// Operation kinds.
const (
	KindGet Kind = "get" // ?consistent read
	KindPut Kind = "put"
	KindCAS Kind = "cas" // PUT ?cas=<ModifyIndex seen with Expect>
)

// Input is what a client asked for. Every written value is unique in a
// history, so "the key's ModifyIndex is the one read together with value v"
// is the same as "the key's value is v": a CAS is modelled as a
// compare-and-swap on values. The empty string means "absent" (keys are
// never deleted and values are never empty).
type Input struct {
	Kind   Kind   `json:"kind"`
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`  // put, cas: the new value
	Expect string `json:"expect,omitempty"` // cas: the value the index was read with
}

// Output is what the client saw.
type Output struct {
	// Unknown: a write whose outcome is not known (timeout, connection
	// reset, server error). It may or may not have been applied; its return
	// time is the end of the history.
	Unknown bool   `json:"unknown,omitempty"`
	Found   bool   `json:"found,omitempty"` // get
	Value   string `json:"value,omitempty"` // get
	OK      bool   `json:"ok,omitempty"`    // cas
}

// Model is the porcupine specification of the KV store restricted to the
// operations above, partitioned by key (state: the key's value, "" when
// absent).
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(string), input.(Input), output.(Output))
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		return describe(input.(Input), output.(Output))
	},
	DescribeState: func(state any) string {
		if state.(string) == "" {
			return "<absent>"
		}
		return fmt.Sprintf("%q", state.(string))
	},
}

// step is the sequential specification of one key.
func step(state string, in Input, out Output) (bool, string) {
	switch in.Kind {
	case KindGet:
		if out.Unknown {
			return true, state
		}
		got := ""
		if out.Found {
			got = out.Value
		}
		return got == state, state
	case KindPut:
		return true, in.Value
	case KindCAS:
		matches := state == in.Expect
		switch {
		case out.Unknown:
			// Linearized at some point after the call: it swapped if it
			// matched then. (Never applied = linearized after everything.)
			if matches {
				return true, in.Value
			}
			return true, state
		case out.OK:
			if !matches {
				return false, state
			}
			return true, in.Value
		default:
			return !matches, state
		}
	default:
		return false, state
	}
}

func describe(in Input, out Output) string {
	var b strings.Builder
	switch in.Kind {
	case KindGet:
		fmt.Fprintf(&b, "get(%s)", in.Key)
	case KindPut:
		fmt.Fprintf(&b, "put(%s, %q)", in.Key, in.Value)
	case KindCAS:
		exp := fmt.Sprintf("%q", in.Expect)
		if in.Expect == "" {
			exp = "<absent>"
		}
		fmt.Fprintf(&b, "cas(%s, %s → %q)", in.Key, exp, in.Value)
	}
	switch {
	case out.Unknown:
		b.WriteString(" → ?")
	case in.Kind == KindGet && !out.Found:
		b.WriteString(" → <absent>")
	case in.Kind == KindGet:
		fmt.Fprintf(&b, " → %q", out.Value)
	case in.Kind == KindCAS:
		fmt.Fprintf(&b, " → %t", out.OK)
	default:
		b.WriteString(" → ok")
	}
	return b.String()
}
