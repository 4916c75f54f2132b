package main

import (
	"math"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	// 1..100000 ns once each: the q-quantile is q*100000.
	for v := int64(1); v <= 100000; v++ {
		h.add(v, 1)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100000
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 1.0/32 {
			t.Errorf("quantile(%v) = %v, want %v within 1/32", q, got, want)
		}
	}
}

func TestHistogramWeightsAndMerge(t *testing.T) {
	var a, b histogram
	a.add(1000, 98)
	b.add(1_000_000, 2)
	a.merge(&b)
	if a.total != 100 {
		t.Fatalf("total %d, want 100", a.total)
	}
	if p50 := a.quantile(0.5); p50 < 968 || p50 > 1032 {
		t.Errorf("p50 = %d, want ~1000", p50)
	}
	if p99 := a.quantile(0.99); p99 < 968_750 || p99 > 1_031_250 {
		t.Errorf("p99 = %d, want ~1000000", p99)
	}
	var empty histogram
	if q := empty.quantile(0.5); q != 0 {
		t.Errorf("empty quantile = %d, want 0", q)
	}
}

func TestHistBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 1000, 123456789, 1 << 62} {
		mid := histValue(histBucket(v))
		if v >= 32 && math.Abs(float64(mid)-float64(v))/float64(v) > 1.0/32 {
			t.Errorf("value %d lands in bucket with middle %d", v, mid)
		}
		if v < 32 && mid != v {
			t.Errorf("small value %d maps to %d", v, mid)
		}
	}
}
