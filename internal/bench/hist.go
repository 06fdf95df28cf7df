package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two, so any recorded value is reported
// within 1/64 (< 1.6 %) of its true value. It is the HDR histogram idea in
// ~60 lines. A Histogram is not safe for concurrent use: give each worker
// its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits  = 6 // 64 buckets per power of two
	histSub      = 1 << histSubBits
	histBuckets  = (64 - histSubBits) * histSub
	histExactMax = 2 * histSub // values below this get their own bucket
)

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < histExactMax {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - histSubBits - 1
	mant := v >> exp // in [histSub, 2*histSub)
	return exp*histSub + int(mant)
}

// bucketHigh returns the largest value that falls in bucket idx.
func bucketHigh(idx int) int64 {
	if idx < histExactMax {
		return int64(idx)
	}
	exp := idx/histSub - 1
	mant := int64(idx%histSub + histSub)
	return (mant+1)<<exp - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are exact.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is exact (kept as a running sum).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q in [0, 1]: the upper bound of
// the bucket holding the ceil(q*n)-th smallest value, clamped to [Min, Max].
// It is 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
