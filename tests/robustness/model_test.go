package robustness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func get(c int, key string, found bool, val string, call, ret int64) Record {
	return Record{ClientID: c, Input: Input{Kind: KindGet, Key: key}, Output: Output{Found: found, Value: val}, Call: call, Return: ret}
}

func put(c int, key, val string, call, ret int64) Record {
	return Record{ClientID: c, Input: Input{Kind: KindPut, Key: key, Value: val}, Call: call, Return: ret}
}

func cas(c int, key, expect, val string, ok bool, call, ret int64) Record {
	return Record{ClientID: c, Input: Input{Kind: KindCAS, Key: key, Expect: expect, Value: val}, Output: Output{OK: ok}, Call: call, Return: ret}
}

func unknown(r Record) Record {
	r.Output = Output{Unknown: true}
	r.Return = -1
	return r
}

func TestModel_Histories(t *testing.T) {
	cases := []struct {
		name string
		recs []Record
		want porcupine.CheckResult
	}{
		{"empty", nil, porcupine.Ok},
		{"absent then put then get", []Record{
			get(0, "a", false, "", 0, 10),
			put(0, "a", "1", 20, 30),
			get(1, "a", true, "1", 40, 50),
		}, porcupine.Ok},
		{"read of a never-written value", []Record{
			get(0, "a", true, "x", 0, 10),
		}, porcupine.Illegal},
		{"stale read after a newer write returned", []Record{
			put(0, "a", "1", 0, 10),
			put(1, "a", "2", 20, 30),
			get(2, "a", true, "1", 40, 50),
		}, porcupine.Illegal},
		{"read concurrent with a write may see either", []Record{
			put(0, "a", "1", 0, 10),
			put(1, "a", "2", 20, 60),
			get(2, "a", true, "1", 30, 40),
			get(3, "a", true, "2", 45, 50),
		}, porcupine.Ok},
		{"reads going back in time", []Record{
			put(0, "a", "1", 0, 10),
			put(1, "a", "2", 20, 100),
			get(2, "a", true, "2", 30, 40),
			get(3, "a", true, "1", 50, 60),
		}, porcupine.Illegal},
		{"cas succeeds on the expected value", []Record{
			put(0, "a", "1", 0, 10),
			cas(1, "a", "1", "2", true, 20, 30),
			get(2, "a", true, "2", 40, 50),
		}, porcupine.Ok},
		{"cas on absent key creates it", []Record{
			cas(0, "a", "", "1", true, 0, 10),
			cas(1, "a", "", "2", false, 20, 30),
			get(2, "a", true, "1", 40, 50),
		}, porcupine.Ok},
		{"two cas from the same value cannot both win", []Record{
			put(0, "a", "1", 0, 10),
			cas(1, "a", "1", "2", true, 20, 50),
			cas(2, "a", "1", "3", true, 20, 50),
		}, porcupine.Illegal},
		{"cas must not fail on a matching value", []Record{
			put(0, "a", "1", 0, 10),
			cas(1, "a", "1", "2", false, 20, 30),
		}, porcupine.Illegal},
		{"cas must not succeed on another value", []Record{
			put(0, "a", "1", 0, 10),
			put(0, "a", "3", 11, 15),
			cas(1, "a", "1", "2", true, 20, 30),
		}, porcupine.Illegal},
		{"unknown put may be applied later", []Record{
			put(0, "a", "1", 0, 10),
			unknown(put(1, "a", "2", 20, 0)),
			get(2, "a", true, "1", 30, 40),
			get(2, "a", true, "2", 50, 60),
		}, porcupine.Ok},
		{"unknown put may never be applied", []Record{
			put(0, "a", "1", 0, 10),
			unknown(put(1, "a", "2", 20, 0)),
			get(2, "a", true, "1", 300, 400),
		}, porcupine.Ok},
		{"unknown put applies once only", []Record{
			put(0, "a", "1", 0, 10),
			unknown(put(1, "a", "2", 20, 0)),
			get(2, "a", true, "2", 30, 40),
			get(2, "a", true, "1", 50, 60),
		}, porcupine.Illegal},
		{"unknown put cannot be applied before its call", []Record{
			put(0, "a", "1", 0, 10),
			get(2, "a", true, "2", 12, 15),
			unknown(put(1, "a", "2", 20, 0)),
		}, porcupine.Illegal},
		{"unknown cas applied", []Record{
			put(0, "a", "1", 0, 10),
			unknown(cas(1, "a", "1", "2", false, 20, 0)),
			get(2, "a", true, "2", 30, 40),
		}, porcupine.Ok},
		{"unknown cas cannot apply on another value", []Record{
			put(0, "a", "3", 0, 10),
			unknown(cas(1, "a", "1", "2", false, 20, 0)),
			get(2, "a", true, "2", 30, 40),
		}, porcupine.Illegal},
		{"keys are independent", []Record{
			put(0, "a", "1", 0, 10),
			put(1, "b", "x", 0, 10),
			get(2, "b", true, "x", 20, 30),
			get(2, "a", true, "1", 20, 30),
			get(3, "c", false, "", 20, 30),
		}, porcupine.Ok},
		{"violation on one key among many", []Record{
			put(0, "a", "1", 0, 10),
			put(1, "b", "x", 0, 10),
			put(1, "b", "y", 12, 14),
			get(2, "a", true, "1", 20, 30),
			get(2, "b", true, "x", 20, 30),
		}, porcupine.Illegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := Check(History{Records: tc.recs}, 10*time.Second)
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestModel_LargeSequentialHistory: a long, mostly sequential history with
// some unknown writes checks quickly (the real runs record thousands).
func TestModel_LargeSequentialHistory(t *testing.T) {
	rec := NewRecorder()
	var now int64
	vals := map[string]string{}
	for i := 0; i < 20000; i++ {
		key := []string{"a", "b", "c", "d"}[i%4]
		c := i % 5
		now += 10
		switch i % 7 {
		case 0, 3:
			v := "v" + string(rune('A'+i%26)) + strings.Repeat("x", i%3) + "-" + strconv.Itoa(i)
			if i%97 == 0 {
				rec.Add(unknown(put(c, key, v, now, 0)))
				continue // never applied
			}
			rec.Add(put(c, key, v, now, now+5))
			vals[key] = v
		case 5:
			v := "c-" + strconv.Itoa(i)
			rec.Add(cas(c, key, vals[key], v, true, now, now+5))
			vals[key] = v
		default:
			rec.Add(get(c, key, vals[key] != "", vals[key], now, now+5))
		}
	}
	start := time.Now()
	res, _ := Check(rec.History(), time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("got %s", res)
	}
	t.Logf("checked %d ops in %s", len(rec.History().Records), time.Since(start))
}

// TestCheck_UnobservedUnknowns: dropping unknown writes nobody read is only
// a shortcut to Ok; an Illegal verdict comes from the whole history.
func TestCheck_UnobservedUnknowns(t *testing.T) {
	// The failed CAS is legal only because the unobserved unknown put of
	// "2" may have been applied before it.
	h := History{Records: []Record{
		put(0, "a", "1", 0, 10),
		unknown(put(1, "a", "2", 20, 0)),
		cas(2, "a", "1", "3", false, 30, 40),
		unknown(put(3, "a", "9", 50, 0)),
	}}
	if n := len(h.WithoutUnobservedUnknowns().Records); n != 2 {
		t.Fatalf("reduced history has %d records, want 2", n)
	}
	if res, _ := Check(h, 10*time.Second); res != porcupine.Ok {
		t.Fatalf("got %s, want Ok", res)
	}
	// An observed unknown write is kept.
	h.Records = append(h.Records, get(4, "a", true, "9", 60, 70))
	if n := len(h.WithoutUnobservedUnknowns().Records); n != 4 {
		t.Fatalf("reduced history has %d records, want 4", n)
	}
	if res, _ := Check(h, 10*time.Second); res != porcupine.Ok {
		t.Fatalf("got %s, want Ok", res)
	}
	// Still Illegal when it is.
	h.Records = append(h.Records, get(5, "a", true, "1", 80, 90))
	if res, _ := Check(h, 10*time.Second); res != porcupine.Illegal {
		t.Fatalf("got %s, want Illegal", res)
	}
}

func TestHistory_SaveLoadVisualize(t *testing.T) {
	h := History{
		Records: []Record{
			put(0, "a", "1", 0, 10),
			put(1, "a", "2", 20, 30),
			get(2, "a", true, "1", 40, 50),
			unknown(put(3, "a", "3", 45, 0)),
		},
		Events: []Event{{Start: 15, End: 35, What: "kill -9 s1"}},
	}
	res, info := Check(h, 10*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("got %s", res)
	}
	dir, err := Save(filepath.Join(t.TempDir(), "fail"), h, &info)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, "history.html"))
	if err != nil || len(html) < 1000 {
		t.Fatalf("visualization: %v (%d bytes)", err, len(html))
	}
	if !strings.Contains(string(html), "kill -9 s1") {
		t.Error("visualization lacks the nemesis annotation")
	}
	back, err := Load(filepath.Join(dir, "history.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Records) != 4 || back.Records[3].Return != -1 || !back.Records[3].Output.Unknown || back.Events[0].What != "kill -9 s1" {
		t.Fatalf("round trip: %+v", back)
	}
	if res, _ := Check(back, 10*time.Second); res != porcupine.Illegal {
		t.Fatalf("reloaded: %s", res)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("missing file must fail")
	}
	st := back.Stats()
	if st.Total != 4 || st.Puts != 3 || st.Gets != 1 || st.Unknown != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRecorder_Concurrent(t *testing.T) {
	r := NewRecorder()
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 100; i++ {
				id := r.NewClientID()
				call := r.Now()
				r.Add(put(id, "k", "v", call, r.Now()))
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	h := r.History()
	if len(h.Records) != 400 {
		t.Fatalf("%d records", len(h.Records))
	}
	ids := map[int]bool{}
	for i, rec := range h.Records {
		if ids[rec.ClientID] {
			t.Fatalf("client id %d reused", rec.ClientID)
		}
		ids[rec.ClientID] = true
		if i > 0 && rec.Call < h.Records[i-1].Call {
			t.Fatal("history not ordered by call")
		}
		if rec.Return < rec.Call {
			t.Fatal("return before call")
		}
	}
}
