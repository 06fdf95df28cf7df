// Package msgp holds the msgpack settings shared by every binary encoding
// Cairn writes: the internal RPC, Raft log commands and version-2
// snapshots. They are part of formats on the wire and on disk: never
// change them.
package msgp

import "github.com/hashicorp/go-msgpack/v2/codec"

// NewHandle returns a msgpack handle with Cairn's settings. A handle is
// safe for concurrent use once configured; callers keep one.
func NewHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	// Encode []byte as the msgpack bin type and strings as str, so both
	// decode back to what they were.
	h.WriteExt = true
	h.RawToString = true
	// Read only `codec` struct tags: the `json:",omitempty"` tags shape the
	// HTTP API and must not drop fields from the binary encodings.
	h.TypeInfos = codec.NewTypeInfos([]string{"codec"})
	return h
}
