package warn

import (
	"math"
	"time"
)

// point is one working-set sample: nanoseconds of Unix time and bytes.
type point struct {
	at int64
	v  int64
}

// series is a cgroup's recent working-set samples for the growth fit,
// oldest first, bounded in points and in time.
type series struct {
	pts []point
}

// add appends a sample and drops those older than window before it and
// those beyond maxPoints.
func (s *series) add(at time.Time, v int64, window time.Duration, maxPoints int) {
	if s.pts == nil {
		s.pts = make([]point, 0, min(maxPoints, 16))
	}
	s.pts = append(s.pts, point{at: at.UnixNano(), v: v})
	oldest := at.UnixNano() - int64(window)
	drop := max(len(s.pts)-maxPoints, 0)
	for drop < len(s.pts) && s.pts[drop].at < oldest {
		drop++
	}
	if drop > 0 {
		s.pts = append(s.pts[:0], s.pts[drop:]...)
	}
}

// reset forgets the samples (the working set collapsed, the cgroup was
// recreated).
func (s *series) reset() { s.pts = s.pts[:0] }

// shift moves the samples' times by d.
func (s *series) shift(d time.Duration) {
	for i := range s.pts {
		s.pts[i].at += int64(d)
	}
}

// lastGap is the time between the last two samples; 0 with fewer.
func (s *series) lastGap() time.Duration {
	n := len(s.pts)
	if n < 2 {
		return 0
	}
	return time.Duration(s.pts[n-1].at - s.pts[n-2].at)
}

// fit is a least squares line through a series.
type fit struct {
	ok     bool          // enough points over enough time, and not flat
	rate   float64       // bytes per second
	r2     float64       // coefficient of determination, 0..1
	span   time.Duration // first to last point
	points int
}

// fit returns the least squares line through the samples, if there are at
// least minPoints spanning at least minSpan and they are not all equal. It
// is two-pass (means first) with times relative to the last sample, so that
// Unix nanoseconds and GiB-sized values keep their precision.
func (s *series) fit(minPoints int, minSpan time.Duration) fit {
	n := len(s.pts)
	if n < minPoints || n < 2 {
		return fit{points: n}
	}
	last := s.pts[n-1].at
	span := time.Duration(last - s.pts[0].at)
	f := fit{span: span, points: n}
	if span < minSpan || span <= 0 {
		return f
	}
	var mx, my float64
	for _, p := range s.pts {
		mx += float64(p.at-last) / 1e9
		my += float64(p.v)
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, sxy, syy float64
	for _, p := range s.pts {
		dx := float64(p.at-last)/1e9 - mx
		dy := float64(p.v) - my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return f // one instant, or flat: no growth to speak of
	}
	f.ok = true
	f.rate = sxy / sxx
	f.r2 = (sxy * sxy) / (sxx * syy)
	if math.IsNaN(f.r2) || math.IsInf(f.rate, 0) {
		return fit{span: span, points: n}
	}
	f.r2 = min(f.r2, 1)
	return f
}

// timeLeft is how long the fitted rate takes to bring ws to limit; 0 when
// it is there already, and false when the rate is not positive.
func (f fit) timeLeft(ws, limit int64) (time.Duration, bool) {
	if !f.ok || f.rate <= 0 {
		return 0, false
	}
	if ws >= limit {
		return 0, true
	}
	secs := float64(limit-ws) / f.rate
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(secs * float64(time.Second)), true
}
