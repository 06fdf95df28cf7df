package rpc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/cairn-io/cairn/internal/msgp"
)

// Wire format of one call, on a yamux stream:
//
//	client -> server: requestHeader, args            (msgpack values)
//	server -> client: responseHeader[, reply]        (reply only without error)
//
// The client sends nothing else while a call is in flight; closing its side
// before the reply cancels the call (the handler's context is cancelled).
//
// Stream reuse: a server that sets responseHeader.KeepAlive goes on reading
// the next request on the same stream after the reply, so a client may send
// further calls on it, one at a time, until either side closes it. A server
// without the field (older versions) closes the stream after one reply; its
// header decodes with KeepAlive false and the client closes the stream as
// before. Old clients close every stream after one reply, which a new server
// sees as the end of the stream. The request framing is unchanged, so
// protocolVersion stays 1.

// protocolVersion is sent in every request header so a future change of
// the framing can be detected.
const protocolVersion uint8 = 1

type requestHeader struct {
	Version uint8
	Method  string
}

type responseHeader struct {
	// Error is the handler's error text; empty means success.
	Error string
	// Codes are the wire codes of the sentinels Error matched.
	Codes []uint16
	// KeepAlive says the server reads another request on this stream after
	// this reply. Omitted when false, so replies that end a stream look
	// exactly like an older server's.
	KeepAlive bool `codec:",omitempty"`
}

// msgpackHandle is shared (it is safe for concurrent use once configured).
var msgpackHandle = msgp.NewHandle()

// Marshal encodes v (a non-nil pointer) exactly as a call's args or reply
// travel on the wire, mirror struct included.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("rpc: marshal %T: not a non-nil pointer", v)
	}
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(toWire(v)); err != nil {
		return nil, fmt.Errorf("rpc: marshal %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes what Marshal encoded into v (a non-nil pointer).
func Unmarshal(b []byte, v any) error {
	d := &decoder{rec: &ioRecorder{}, dec: codec.NewDecoderBytes(b, msgpackHandle)}
	if err := d.decode(v); err != nil {
		return fmt.Errorf("rpc: unmarshal: %w", err)
	}
	return nil
}

// A known limit of this codec: when it decodes a map whose values are
// structs (map[string]T, not map[string]*T) it reuses one temporary value
// for every entry, so maps, slices and pointers inside T end up shared
// between entries. Request and reply types therefore use pointer values in
// such maps; TestCodec_NoSharedStateMapValues enforces it.

// The codec reports I/O failures as text only; ioRecorder keeps the first
// underlying error so callers can still match it (timeouts, resets, the
// size limit) with errors.Is.
type ioRecorder struct {
	r   io.Reader
	w   io.Writer
	err error
	// written counts the bytes the writer accepted since the last reset:
	// zero after a failed write means nothing of the request left.
	written int64
}

// reset forgets the previous call's error and byte count.
func (rec *ioRecorder) reset() {
	rec.err = nil
	rec.written = 0
}

func (rec *ioRecorder) Read(p []byte) (int, error) {
	n, err := rec.r.Read(p)
	if err != nil && err != io.EOF && rec.err == nil {
		rec.err = err
	}
	return n, err
}

func (rec *ioRecorder) Write(p []byte) (int, error) {
	n, err := rec.w.Write(p)
	rec.written += int64(n)
	if err != nil && rec.err == nil {
		rec.err = err
	}
	return n, err
}

// cause prefers the recorded I/O error over the codec's description of it.
func (rec *ioRecorder) cause(err error) error {
	if rec.err != nil {
		return rec.err
	}
	return err
}

// encoder writes msgpack values to a buffered stream.
type encoder struct {
	rec *ioRecorder
	bw  *bufio.Writer
	enc *codec.Encoder
}

func newEncoder(w io.Writer) *encoder {
	rec := &ioRecorder{w: w}
	bw := bufio.NewWriterSize(rec, 4096)
	return &encoder{rec: rec, bw: bw, enc: codec.NewEncoder(bw, msgpackHandle)}
}

// encode writes the values and flushes them.
func (e *encoder) encode(vs ...any) error {
	for _, v := range vs {
		if err := e.enc.Encode(toWire(v)); err != nil {
			return fmt.Errorf("encode %T: %w", v, e.rec.cause(err))
		}
	}
	if err := e.bw.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// decoder reads msgpack values from a buffered stream.
type decoder struct {
	rec *ioRecorder
	br  *bufio.Reader
	dec *codec.Decoder
}

func newDecoder(r io.Reader) *decoder {
	rec := &ioRecorder{r: r}
	br := bufio.NewReaderSize(rec, 4096)
	return &decoder{rec: rec, br: br, dec: codec.NewDecoder(br, msgpackHandle)}
}

// wait blocks until the next value's first byte has arrived (or the read
// fails), without consuming it.
func (d *decoder) wait() error {
	if _, err := d.br.Peek(1); err != nil {
		return d.rec.cause(err)
	}
	return nil
}

// buffered is the number of bytes read from the stream but not decoded.
func (d *decoder) buffered() int { return d.br.Buffered() }

// decode reads one value into v (a pointer).
func (d *decoder) decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decode into %T: not a non-nil pointer", v)
	}
	m := mirrorOf(rv.Elem().Type())
	if m == nil {
		if err := d.dec.Decode(v); err != nil {
			return fmt.Errorf("decode %T: %w", v, d.rec.cause(err))
		}
		return nil
	}
	mv := reflect.New(m.typ)
	if err := d.dec.Decode(mv.Interface()); err != nil {
		return fmt.Errorf("decode %T: %w", v, d.rec.cause(err))
	}
	for j, i := range m.fields {
		rv.Elem().Field(i).Set(mv.Elem().Field(j))
	}
	return nil
}

// Embedded structs and shadowed fields.
//
// msgpack (like encoding/json) inlines the fields of an embedded struct and
// drops a field that an outer field of the same name shadows:
// RegisterRequest.Datacenter would hide WriteRequest.Datacenter and the
// routing datacenter would be lost on the wire. So a top-level request or
// reply with embedded structs travels as a "mirror" struct whose embedded
// fields are ordinary named fields (WriteRequest, QueryOptions, QueryMeta),
// which keeps every field. Types nested deeper (the state types) have no
// embedded structs; a test keeps it that way.

type mirror struct {
	typ    reflect.Type
	fields []int // mirror field j is original field fields[j]
}

var mirrors sync.Map // reflect.Type -> *mirror (nil when not needed)

// mirrorOf returns the mirror of struct type t, or nil when t has no
// embedded struct.
func mirrorOf(t reflect.Type) *mirror {
	if cached, ok := mirrors.Load(t); ok {
		return cached.(*mirror)
	}
	var m *mirror
	if t.Kind() == reflect.Struct {
		var fields []reflect.StructField
		var idx []int
		embedded := false
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous {
				embedded = true
			}
			fields = append(fields, reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag})
			idx = append(idx, i)
		}
		if embedded {
			m = &mirror{typ: reflect.StructOf(fields), fields: idx}
		}
	}
	mirrors.Store(t, m)
	return m
}

// toWire returns the value to encode for v: its mirror when it is a
// pointer to a struct with embedded structs, else v itself.
func toWire(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return v
	}
	m := mirrorOf(rv.Elem().Type())
	if m == nil {
		return v
	}
	mv := reflect.New(m.typ).Elem()
	for j, i := range m.fields {
		mv.Field(j).Set(rv.Elem().Field(i))
	}
	return mv.Addr().Interface()
}

// errMessageTooLarge marks a request over the server's size limit.
var errMessageTooLarge = errors.New("message too large")

// limitReader fails with errMessageTooLarge once more than n bytes were
// read, instead of io.LimitReader's silent EOF.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errMessageTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// RemoteError is an error returned by the handler on the server, as opposed
// to a failure to reach it or a broken connection. Its text is the server's;
// errors.Is matches the registered sentinels the server-side error matched
// (ErrNoLeader, ErrNotFound, ...).
type RemoteError struct {
	Message   string
	sentinels []error
}

// Error implements error.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinels the remote error matched.
func (e *RemoteError) Unwrap() []error { return e.sentinels }

// encodeError turns a handler error into a response header.
func (r *Registry) encodeError(err error) responseHeader {
	msg := err.Error()
	if msg == "" {
		msg = "rpc: remote error"
	}
	return responseHeader{Error: msg, Codes: r.errorCodes(err)}
}

// decodeError turns a response header back into an error (nil on success).
func (r *Registry) decodeError(h responseHeader) error {
	if h.Error == "" {
		return nil
	}
	e := &RemoteError{Message: h.Error}
	for _, c := range h.Codes {
		if s := r.sentinel(c); s != nil {
			e.sentinels = append(e.sentinels, s)
		}
	}
	return e
}
