package server

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/cairn-io/cairn/internal/msgp"
)

// Raft command bodies.
//
// A command is one MessageType byte (possibly with IgnoreUnknownTypeFlag)
// followed by the encoded request. Two body formats exist, told apart by
// their first byte:
//
//   - JSON (encoding/json), written by servers before msgpack commands. A
//     request is always a struct, so the body always starts with '{'.
//   - msgpack, written now: the internal RPC's encoding (go-msgpack/v2,
//     []byte as bin, strings as str, `codec` struct tags only, so the
//     `json:",omitempty"` tags of the HTTP shapes drop nothing). A struct
//     starts with a msgpack map header (0x80-0x8f, 0xde, 0xdf), never with
//     '{' (0x7b, a positive fixint that no struct encodes as).
//
// Any future body format must start with a byte neither of these can.
//
// Like encoding/json, msgpack inlines embedded structs (WriteRequest) and
// drops an embedded field that an outer field of the same name shadows
// (RegisterRequest.Datacenter hides WriteRequest.Datacenter). The FSM reads
// no WriteRequest field, so both formats carry everything it needs.

// jsonBodyStart is the first byte of every JSON command body.
const jsonBodyStart = '{'

// commandHandle is the msgpack configuration of command bodies. It must
// keep decoding what it encoded before: never change these settings.
var commandHandle = msgp.NewHandle()

// Encoders and decoders are costly to build and reusable after ResetBytes.
var (
	encoderPool = sync.Pool{New: func() any { return &commandEncoder{enc: codec.NewEncoderBytes(nil, commandHandle)} }}
	decoderPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, commandHandle) }}
)

// commandEncoder is a pooled encoder with its scratch buffer.
type commandEncoder struct {
	enc *codec.Encoder
	buf []byte
}

// maxPooledScratch bounds the scratch buffer a pooled encoder keeps, so one
// huge transaction does not pin its size in memory.
const maxPooledScratch = 64 << 10

// encodeCommand builds a Raft command from a message type and a request
// (a pointer to a struct), with a msgpack body.
func encodeCommand(t MessageType, req any) ([]byte, error) {
	ce := encoderPool.Get().(*commandEncoder)
	defer func() {
		if cap(ce.buf) > maxPooledScratch {
			ce.buf = nil
		}
		encoderPool.Put(ce)
	}()
	// The encoder writes from the start of the buffer, so the body goes to
	// scratch space and is copied behind the type byte.
	ce.buf = ce.buf[:0]
	ce.enc.ResetBytes(&ce.buf)
	if err := ce.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("server: encode %d command: %w", t, err)
	}
	out := make([]byte, 1+len(ce.buf))
	out[0] = byte(t)
	copy(out[1:], ce.buf)
	return out, nil
}

// encodeCommandJSON builds a command the way servers did before msgpack
// bodies. Only tests and benchmarks use it, to check that such logs still
// apply.
func encodeCommandJSON(t MessageType, req any) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("server: encode %d command: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// decodeCommand decodes a command body (the bytes after the type) into req,
// a pointer to the request struct, in whichever format it was written.
// Every FSM handler decodes through it.
func decodeCommand(body []byte, req any) error {
	if len(body) == 0 {
		return fmt.Errorf("server: empty command body")
	}
	if body[0] == jsonBodyStart {
		return json.Unmarshal(body, req)
	}
	dec := decoderPool.Get().(*codec.Decoder)
	dec.ResetBytes(body)
	err := dec.Decode(req)
	n := dec.NumBytesRead()
	dec.ResetBytes(nil)
	decoderPool.Put(dec)
	if err != nil {
		return fmt.Errorf("msgpack: %w", err)
	}
	if n != len(body) {
		// A well-formed body is exactly one value; trailing bytes mean a
		// corrupt or misread entry (json.Unmarshal rejects them too).
		return fmt.Errorf("msgpack: %d trailing bytes after the request", len(body)-n)
	}
	return nil
}
