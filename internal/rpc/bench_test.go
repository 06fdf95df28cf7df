package rpc

import (
	"context"
	"net"
	"testing"

	"github.com/cairn-io/cairn/internal/state"
)

// BenchmarkConnPool_RPC measures one KVS.Get round trip over loopback.
func BenchmarkConnPool_RPC(b *testing.B) {
	reply := IndexedKVEntries{Entries: []*state.KVEntry{{Key: "web/config", Value: make([]byte, 256), ModifyIndex: 42}}}
	h := func(_ context.Context, _ string, _, r any) error {
		*r.(*IndexedKVEntries) = reply
		return nil
	}
	_, addr, stop := benchServer(b, h)
	defer stop()
	pool := NewConnPool(ConnPoolConfig{})
	defer pool.Shutdown()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var out IndexedKVEntries
			if err := pool.RPC(ctx, addr, MethodKVSGet, &KeyRequest{Key: "web/config"}, &out); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchServer serves multiplexed connections only; plain adds plain ones.
func benchServer(b *testing.B, h Handler, plain ...bool) (*Server, net.Addr, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := NewMux(ln, MuxConfig{})
	srv, err := NewServer(ServerConfig{Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	rpcLn := mux.RPCListener()
	if len(plain) > 0 && plain[0] {
		plainLn := mux.PlainRPCListener()
		go func() { _ = srv.ServePlain(ctx, plainLn); done <- struct{}{} }()
	} else {
		done <- struct{}{}
	}
	mux.Start()
	go func() { _ = srv.Serve(ctx, rpcLn); done <- struct{}{} }()
	return srv, ln.Addr(), func() { cancel(); <-done; <-done; _ = mux.Close() }
}

// BenchmarkConnPool_RPCSequential measures one small call at a time over a
// real TCP loopback session (a server without plain connections): the
// per-call cost of the stream and the codec, without concurrency hiding it.
func BenchmarkConnPool_RPCSequential(b *testing.B) {
	benchSequential(b, false)
}

func benchSequential(b *testing.B, plain bool) {
	h := func(_ context.Context, _ string, args, r any) error {
		*r.(*IndexedKVEntries) = IndexedKVEntries{QueryMeta: QueryMeta{Index: 7}, Entries: []*state.KVEntry{{Key: args.(*KeyRequest).Key, Value: []byte("v"), ModifyIndex: 7}}}
		return nil
	}
	_, addr, stop := benchServer(b, h, plain)
	defer stop()
	pool := NewConnPool(ConnPoolConfig{})
	defer pool.Shutdown()
	ctx := context.Background()
	args := &KeyRequest{Key: "web/config"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var out IndexedKVEntries
		if err := pool.RPC(ctx, addr, MethodKVSGet, args, &out); err != nil {
			b.Fatal(err)
		}
	}
}
