package config

import (
	"os"
	"testing"
)

func fuzzSeeds(f *testing.F, files ...string) {
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzDecode runs the whole pipeline after reading a file: parse, normalise,
// decode, finalize and validate. Errors are fine; panics are not.
func fuzzDecode(t *testing.T, format string, data []byte) {
	m, err := parseSource("fuzz", format, data)
	if err != nil {
		if m != nil {
			t.Fatalf("map returned with error %v", err)
		}
		return
	}
	var warnings []string
	rc := DefaultConfig()
	d := &decoder{src: "fuzz", rc: rc, warnings: &warnings, set: map[string]bool{}}
	if err := d.object("", m); err != nil {
		return
	}
	if _, err := finalize(rc, d.set, true); err != nil {
		return
	}
	_ = rc.Validate()
	_ = rc.Clone()
}

func FuzzLoadJSON(f *testing.F) {
	fuzzSeeds(f, "testdata/full.json")
	f.Add([]byte(`{"ports": [{"http": 1}, {"dns": 2}], "service": [{"name": "a"}]}`))
	f.Add([]byte(`{"node_meta": [{"a": "b"}], "retry_join": "x", "limits": {"kv_max_value_size": -1}}`))
	f.Add([]byte(`{"acl": {"tokens": []}, "dns_config": {"service_ttl": {"*": 1}}}`))
	f.Add([]byte(`{"bootstrap_expect": 1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, FormatJSON, data) })
}

func FuzzLoadHCL(f *testing.F) {
	fuzzSeeds(f, "testdata/full.hcl")
	f.Add([]byte("ports { http = 1 }\nports { dns = 2 }\nservice { name = \"a\" }\nservice { name = \"b\" }"))
	f.Add([]byte(`service "web" { port = 80 }`))
	f.Add([]byte("x = <<EOF\nhello\nEOF\n"))
	f.Add([]byte(`node_meta = [{a = "b"}]`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, FormatHCL, data) })
}
