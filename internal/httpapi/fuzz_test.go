package httpapi

import (
	"net/url"
	"testing"
)

// The decoders and the query parser see untrusted input; they must return
// errors, never panic.

func FuzzDecodeServiceDefinition(f *testing.F) {
	for _, s := range []string{
		`{"Name":"web","Port":80,"Check":{"TTL":"10s"}}`,
		`{"name":"web","enable_tag_override":true,"tagged_addresses":{"lan":{"address":"a","port":1}}}`,
		`{"Name":"web","Checks":[{"ScriptArgs":["x"]},null],"Weights":{"passing":1}}`,
		`{"Meta":{"a":{"b":[1,2,{"c":null}]}}}`,
		`[]`, `null`, `"x"`, `{"Port":1e400}`, `{"Check":{"TTL":-1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := decodeServiceDefinition(data)
		if err == nil && def == nil {
			t.Fatal("nil definition without error")
		}
		if err != nil {
			if code, _ := errorStatus(err); code != 400 {
				t.Fatalf("decode error mapped to %d: %v", code, err)
			}
		}
	})
}

func FuzzDecodeCheckDefinition(f *testing.F) {
	for _, s := range []string{
		`{"Name":"c","TTL":"10s","Status":"passing"}`,
		`{"name":"c","http":"http://x","header":{"A":["b"]},"interval":"1s","tls_skip_verify":true}`,
		`{"ScriptArgs":["/bin/true"],"Interval":15}`,
		`{"Header":{"A":"b"}}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := decodeCheckDefinition(data)
		if err == nil && def == nil {
			t.Fatal("nil definition without error")
		}
		if err != nil {
			if code, _ := errorStatus(err); code != 400 {
				t.Fatalf("decode error mapped to %d: %v", code, err)
			}
		}
	})
}

func FuzzDecodeRegister(f *testing.F) {
	for _, s := range []string{
		`{"Node":"n","Address":"a","Service":{"Service":"web","Tags":["a"]},"Checks":[{"CheckID":"c","Status":"passing"}]}`,
		`{"node":"n","node_meta":{"k":"v"},"check":{"definition":{"interval":"10s"}}}`,
		`{"Datacenter":"dc1","Token":"t","SkipNodeUpdate":true}`,
		`{"Service":{"TaggedAddresses":{"x":{"Port":"p"}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := decodeRegister(data); err != nil {
			if code, _ := errorStatus(err); code != 400 {
				t.Fatalf("decode error mapped to %d: %v", code, err)
			}
		}
		_, _ = decodeDeregister(data)
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "index=10&wait=5s", "stale&consistent", "wait=10m1s", "index=-1", "wait=9999999999h",
		"filter=" + url.QueryEscape(`Service.Tags contains "a" and Port > 1`), "dc=dc2&token=x&near=_agent",
		"node-meta=a:b&node-meta=c", "%zz", "index=18446744073709551616",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		opts, err := parseQuery(q, "dc1", "")
		if err != nil {
			if code, _ := errorStatus(err); code != 400 {
				t.Fatalf("parse error mapped to %d: %v", code, err)
			}
			return
		}
		if opts.MaxQueryTime <= 0 || opts.MaxQueryTime > maxQueryTime {
			t.Fatalf("wait out of range: %v", opts.MaxQueryTime)
		}
		if opts.AllowStale && opts.RequireConsistent {
			t.Fatal("stale and consistent both accepted")
		}
		_ = nodeMetaFilters(q)
		_, _ = boolParam(q, "passing")
		_, _, _ = uintParam(q, "flags", "flags")
	})
}
