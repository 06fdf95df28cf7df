package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogram_Buckets(t *testing.T) {
	// Every value lies within its bucket, buckets are contiguous, and the
	// relative width stays under 1/64.
	prevHigh := int64(-1)
	for idx := 0; idx < histBuckets; idx++ {
		high := bucketHigh(idx)
		require.Equal(t, idx, bucketOf(prevHigh+1), "bucket %d starts right after the previous one", idx)
		require.Equal(t, idx, bucketOf(high), "bucket %d holds its upper bound", idx)
		low := prevHigh + 1
		if low >= histExactMax {
			require.LessOrEqual(t, float64(high-low)/float64(low), 1.0/64+1e-9)
		}
		prevHigh = high
		if high < 0 || high == 1<<63-1 {
			break
		}
	}
	require.Equal(t, histBuckets-1, bucketOf(1<<63-1))
}

func TestHistogram_Quantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{5 * time.Millisecond}, 0.99, 5 * time.Millisecond},
		{"exact small", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"p90 small", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		{"min", []time.Duration{3 * time.Second, time.Second}, 0, time.Second},
		{"max", []time.Duration{3 * time.Second, time.Second}, 1, 3 * time.Second},
		{"negative is zero", []time.Duration{-5}, 0.5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			require.Equal(t, tc.want, h.Quantile(tc.q))
		})
	}
}

func TestHistogram_AgainstSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100000)
	for i := range vals {
		// Log-uniform from 1 µs to ~1 s.
		vals[i] = time.Duration(float64(time.Microsecond) * float64(uint64(1)<<rng.IntN(20)) * (1 + rng.Float64()))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		require.InEpsilon(t, float64(exact), float64(got), 1.0/64, "q=%v", q)
		require.GreaterOrEqual(t, got, exact, "reported as the bucket's upper bound")
	}
	require.Equal(t, vals[0], h.Min())
	require.Equal(t, vals[len(vals)-1], h.Max())

	// Merging halves equals recording everything in one.
	var a, b Histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	require.Equal(t, h.Count(), a.Count())
	require.Equal(t, h.Quantile(0.99), a.Quantile(0.99))
	require.Equal(t, h.Min(), a.Min())
	require.Equal(t, h.Max(), a.Max())
	require.InDelta(t, float64(h.Mean()), float64(a.Mean()), float64(time.Microsecond))
}
