package main

import "math/bits"

// histogram counts latencies (ns) in log-linear buckets: 2^histSubBits
// sub-buckets per power of two, so a quantile is off by at most 1/32 (~3%)
// whatever the range, with a fixed array and no allocation per sample (the
// idea of HdrHistogram, without its dependency).
type histogram struct {
	counts [(64 - histSubBits + 1) << histSubBits]uint64
	total  uint64
}

const histSubBits = 5

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= histSubBits
	mant := (v >> uint(exp-histSubBits)) & (1<<histSubBits - 1)
	return (exp-histSubBits+1)<<histSubBits | int(mant)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	exp := i>>histSubBits + histSubBits - 1
	mant := uint64(i & (1<<histSubBits - 1))
	lo := (1<<histSubBits | mant) << uint(exp-histSubBits)
	return lo + (uint64(1)<<uint(exp-histSubBits))/2
}

// add records n samples of v nanoseconds.
func (h *histogram) add(v int64, n uint64) {
	if v < 0 {
		v = 0
	}
	h.counts[histBucket(uint64(v))] += n
	h.total += n
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the value at q (0..1) in ns, 0 for an empty histogram.
func (h *histogram) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return int64(histValue(i))
		}
	}
	return int64(histValue(len(h.counts) - 1))
}
