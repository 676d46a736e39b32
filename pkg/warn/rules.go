package warn

import (
	"time"
)

// verdict is one rule's judgement of one sample: whether its warning should
// open (when closed) or clear (when open), with the figures and the key
// figure, higher being worse, that decides when an open warning is sent
// again. Between the two bounds (the hysteresis band) neither holds and an
// open warning stays open.
type verdict struct {
	open, clear bool
	figures     Figures
	thresholds  Thresholds
	key         float64
}

// memFigures are a cgroup sample's memory figures.
func memFigures(s CgroupSample) Figures {
	f := Figures{WorkingSet: s.WorkingSet, Usage: s.Usage, Limit: s.Limit}
	if s.Limit > 0 {
		f.Ratio = float64(s.WorkingSet) / float64(s.Limit)
	}
	return f
}

// withFit adds a growth fit to figures when it is one of growth.
func withFit(f Figures, ft fit, ws, limit int64) Figures {
	left, growing := ft.timeLeft(ws, limit)
	if !growing {
		return f
	}
	f.GrowthRate, f.TimeLeft = ft.rate, left
	f.FitWindow, f.FitPoints, f.FitR2 = ft.span, ft.points, ft.r2
	return f
}

// nearLimit: the working set at or above NearLimitRatio for NearLimitFor
// (level), or at or above NearLimitApproachRatio with a good fit reaching
// the limit within NearLimitApproachWithin (approach). It clears below
// NearLimitResolveRatio once the approach no longer holds loosely: a fit of
// at least ForecastResolveR2 still growing to the limit within twice
// NearLimitApproachWithin.
func (e *Engine) nearLimit(g *group, s CgroupSample, ft fit) verdict {
	c := &e.cfg
	if s.Limit == 0 {
		g.aboveSince = time.Time{}
		return verdict{clear: true}
	}
	f := withFit(memFigures(s), ft, s.WorkingSet, s.Limit)
	// The wait counts from the first sample at or above the ratio and
	// restarts only below the resolve ratio, so a working set hovering
	// across the threshold opens once rather than never.
	switch {
	case f.Ratio < c.NearLimitResolveRatio:
		g.aboveSince = time.Time{}
	case f.Ratio >= c.NearLimitRatio && g.aboveSince.IsZero():
		g.aboveSince = s.At
	}
	level := f.Ratio >= c.NearLimitRatio && !g.aboveSince.IsZero() && s.At.Sub(g.aboveSince) >= c.NearLimitFor
	growing := f.GrowthRate > 0
	approach := growing && ft.r2 >= c.ForecastMinR2 && f.Ratio >= c.NearLimitApproachRatio && f.TimeLeft <= c.NearLimitApproachWithin
	approaching := growing && ft.r2 >= c.ForecastResolveR2 && f.TimeLeft <= 2*c.NearLimitApproachWithin
	return verdict{
		open:    level || approach,
		clear:   f.Ratio < c.NearLimitResolveRatio && !approaching,
		figures: f,
		thresholds: Thresholds{
			Open: c.NearLimitRatio, Resolve: c.NearLimitResolveRatio, For: c.NearLimitFor,
			ApproachRatio: c.NearLimitApproachRatio, ApproachWithin: c.NearLimitApproachWithin,
			MinR2: c.ForecastMinR2,
		},
		key: -float64(max(s.Limit-s.WorkingSet, 0)), // less headroom is worse
	}
}

// limitReclaim: the max counter rose over LimitReclaimRises consecutive
// intervals with the working set at or above LimitReclaimMinRatio; clears
// after LimitReclaimQuiet without a rise or below the ratio.
func (e *Engine) limitReclaim(g *group, s CgroupSample) verdict {
	c := &e.cfg
	if s.Limit == 0 {
		return verdict{clear: true}
	}
	f := memFigures(s)
	full := f.Ratio >= c.LimitReclaimMinRatio
	if s.MaxEvents >= g.riseBase && !g.riseStart.IsZero() {
		f.MaxEventsDelta = s.MaxEvents - g.riseBase
		if d := s.At.Sub(g.riseStart).Seconds(); d > 0 {
			f.MaxEventsRate = float64(f.MaxEventsDelta) / d
		}
	}
	return verdict{
		open:       g.rises >= c.LimitReclaimRises && full,
		clear:      !full || g.lastRise.IsZero() || s.At.Sub(g.lastRise) >= c.LimitReclaimQuiet,
		figures:    f,
		thresholds: Thresholds{Open: c.LimitReclaimMinRatio, Resolve: c.LimitReclaimMinRatio, Rises: c.LimitReclaimRises, Quiet: c.LimitReclaimQuiet},
		key:        f.MaxEventsRate,
	}
}

// pressure: PSI full avg10 at or above PressureOpen; clears below
// PressureResolve.
func (e *Engine) pressure(psi float64, f Figures) verdict {
	f.PSIFullAvg10 = psi
	return verdict{
		open:       psi >= e.cfg.PressureOpen,
		clear:      psi < e.cfg.PressureResolve,
		figures:    f,
		thresholds: Thresholds{Open: e.cfg.PressureOpen, Resolve: e.cfg.PressureResolve},
		key:        psi,
	}
}

// nodeLow: MemAvailable at or below the eviction threshold plus the margin;
// clears above the threshold plus the resolve margin.
func (e *Engine) nodeLow(n NodeSample) verdict {
	c := &e.cfg
	margin := max(c.NodeLowMargin*float64(n.MemTotal), float64(c.NodeLowMinMargin))
	openAt := float64(n.EvictionThreshold) + margin
	resolveAbove := float64(n.EvictionThreshold) + margin*c.NodeLowResolveMargin/c.NodeLowMargin
	avail := float64(n.MemAvailable)
	return verdict{
		open:       avail <= openAt,
		clear:      avail > resolveAbove,
		figures:    Figures{MemAvailable: n.MemAvailable, MemTotal: n.MemTotal, EvictionThreshold: n.EvictionThreshold},
		thresholds: Thresholds{Open: openAt, Resolve: resolveAbove},
		key:        -avail, // less available is worse
	}
}

// forecast: a good fit (R^2 at least ForecastMinR2) of a growing working set
// at or above ForecastMinRatio reaching the limit within ForecastHorizon;
// clears when the fit falls below ForecastResolveR2, growth stops, the
// samples are too few (after a collapse) or the time left is beyond
// ForecastResolveHorizon.
func (e *Engine) forecast(s CgroupSample, ft fit) verdict {
	c := &e.cfg
	if s.Limit == 0 {
		return verdict{clear: true}
	}
	f := withFit(memFigures(s), ft, s.WorkingSet, s.Limit)
	growing := f.GrowthRate > 0
	return verdict{
		open:    growing && ft.r2 >= c.ForecastMinR2 && f.Ratio >= c.ForecastMinRatio && f.TimeLeft <= c.ForecastHorizon,
		clear:   !growing || ft.r2 < c.ForecastResolveR2 || f.TimeLeft > c.ForecastResolveHorizon,
		figures: f,
		thresholds: Thresholds{
			Open: c.ForecastHorizon.Seconds(), Resolve: c.ForecastResolveHorizon.Seconds(),
			MinRatio: c.ForecastMinRatio, MinR2: c.ForecastMinR2,
		},
		key: -f.TimeLeft.Seconds(), // less time is worse
	}
}
