package warn

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrConfig means a Config value is out of range; the error says which.
var ErrConfig = errors.New("invalid warning config")

// Config sets the engine's thresholds. Start from DefaultConfig: its zero
// value is not valid. Each default says why it was picked; the lead-time
// arithmetic behind the growth defaults is in scenario_test.go.
type Config struct {
	// NearLimitRatio: near-limit opens when the working set has stayed at
	// or above this share of the limit for NearLimitFor. Default 0.90: the
	// last tenth of a limit is where a burst gets a container killed, and a
	// container steady at 80% (issue #17's no-false-alarm case) is well
	// below it.
	NearLimitRatio float64
	// NearLimitResolveRatio: an open near-limit resolves below this ratio,
	// once its approach trigger no longer holds even loosely (a fit of
	// ForecastResolveR2 still growing to the limit within twice
	// NearLimitApproachWithin). Default 0.85: five
	// points of hysteresis, more than the jitter of a working set that sits
	// at the threshold.
	NearLimitResolveRatio float64
	// NearLimitFor is how long the working set must stay at or above
	// NearLimitRatio (dips that stay above NearLimitResolveRatio do not
	// restart the wait). Default 30 s: a short burst that falls back is not
	// a warning; three samples at the default 10 s interval.
	NearLimitFor time.Duration
	// NearLimitApproachRatio and NearLimitApproachWithin: near-limit also
	// opens, at once, when the working set is at or above
	// NearLimitApproachRatio and a good growth fit (as for forecast) reaches
	// the limit within NearLimitApproachWithin. Defaults 0.60 and 1 min: a
	// container growing 1 MiB/s toward 64 MiB crosses 90% 6 s before its
	// kill, too late to act, but is at 62% with 24 s left when the fit
	// first has 20 s of samples; a container that does not grow never
	// takes this trigger, whatever its level.
	NearLimitApproachRatio  float64
	NearLimitApproachWithin time.Duration

	// LimitReclaimRises: limit-reclaim opens when the max event counter
	// rose across this many consecutive sample intervals. Default 2: one
	// rise is a blip (a single allocation burst), two in a row is the group
	// living at its limit.
	LimitReclaimRises int
	// LimitReclaimMinRatio: limit-reclaim needs the working set at or above
	// this share of the limit. Default 0.85: a group whose usage sits at the
	// limit with page cache hits max all the time, and the kernel takes the
	// cache back cheaply; only when the working set fills the limit is the
	// reclaim taking memory in use.
	LimitReclaimMinRatio float64
	// LimitReclaimQuiet: an open limit-reclaim resolves when the counter
	// has not risen for this long (or the working set fell below the
	// ratio). Default 30 s: three quiet samples at the default interval.
	LimitReclaimQuiet time.Duration

	// PressureOpen and PressureResolve: pressure opens when PSI memory
	// "full" avg10 is at or above PressureOpen percent, and resolves below
	// PressureResolve. Defaults 10 and 5: 10% of the last 10 s with every
	// task stalled on memory is a service visibly slowed; avg10 is already
	// a 10 s average, so no wait is added, and halving it before resolving
	// keeps a group at 8-12% from flapping.
	PressureOpen, PressureResolve float64

	// NodeLowMargin and NodeLowMinMargin: node-low opens when MemAvailable
	// is at or below the eviction threshold (0 when unknown) plus a margin
	// of max(NodeLowMargin*MemTotal, NodeLowMinMargin). Defaults 5% and
	// 256 MiB: on a small node 256 MiB is a few seconds of a runaway pod
	// before kubelet evicts (or, without a threshold, the kernel kills);
	// on a large node 5% is.
	NodeLowMargin    float64
	NodeLowMinMargin int64
	// NodeLowResolveMargin: node-low resolves when MemAvailable is above the
	// threshold plus the open margin scaled by
	// NodeLowResolveMargin/NodeLowMargin. Default 7.5%: half a margin of
	// hysteresis.
	NodeLowResolveMargin float64

	// ForecastWindow and ForecastMaxPoints bound the working-set samples the
	// growth fit uses: those of the last ForecastWindow, at most
	// ForecastMaxPoints of them. Defaults 2 min and 120: long enough to
	// span several GC cycles (whose sawtooth then fits badly and is
	// ignored), short enough to follow a leak that speeds up; 120 points is
	// one per second, 2 KiB a cgroup.
	ForecastWindow    time.Duration
	ForecastMaxPoints int
	// ForecastMinPoints and ForecastMinSpan: no fit with fewer points or a
	// shorter time between the first and last. Defaults 3 and 20 s: the
	// fewest points for which a fit's quality means anything, and enough
	// time that a single allocation burst is not a trend; at the default
	// 10 s interval a fit is possible after 20 s.
	ForecastMinPoints int
	ForecastMinSpan   time.Duration
	// ForecastMinR2 and ForecastResolveR2: a fit is good enough to open on
	// when its R^2 is at or above ForecastMinR2, and an open forecast
	// resolves when R^2 falls below ForecastResolveR2. Defaults 0.9 and
	// 0.7: steady growth fits at 0.99; a GC sawtooth over a window of
	// several cycles, or a flat line with jitter, fits near 0.
	ForecastMinR2, ForecastResolveR2 float64
	// ForecastHorizon and ForecastResolveHorizon: forecast opens when the
	// limit is reached within ForecastHorizon and resolves when the time
	// left is beyond ForecastResolveHorizon (or growth stops). Defaults
	// 10 min and 15 min: time for a person or an autoscaler to act; a
	// slower leak is near-limit's business later.
	ForecastHorizon, ForecastResolveHorizon time.Duration
	// ForecastMinRatio: forecast opens only when the working set is at or
	// above this share of the limit. Default 0.5: below half the limit,
	// growth is mostly a workload warming up (loading, JIT, caches) and a
	// projection from it is mostly wrong; a leak is caught from halfway.
	ForecastMinRatio float64

	// UpdateChange, UpdateMinGap and UpdateEvery rule how often an open
	// warning is sent again, judged on its key figure (near-limit's
	// headroom, limit-reclaim's rate, pressure's avg10, node-low's available
	// memory, forecast's time left): when it is worse than last sent by
	// UpdateChange of itself, at most once per UpdateMinGap; when it has
	// been better by UpdateChange on every sample for UpdateEvery; smaller
	// moves are not sent (Open has the latest figures). Defaults 25%, 10 s and 1 min: a figure getting worse
	// one way is resent at most log(range)/log(1.25) times, a figure
	// swinging back and forth is sent at its worst once, and good news can
	// wait a minute.
	UpdateChange float64
	UpdateMinGap time.Duration
	UpdateEvery  time.Duration

	// GoneAfter: a cgroup missing from the samples for this long is
	// forgotten and its open warnings resolved (Gone). Default 30 s: a
	// cgroup skipped by one or two failed reads is not gone.
	GoneAfter time.Duration
	// MaxCgroups bounds the cgroups tracked; past it new cgroups are not
	// tracked (counted in Stats.Untracked). Default 4096: a node runs at
	// most a few hundred pods of a few containers each.
	MaxCgroups int
	// History bounds the resolved warnings kept for Preceding; Lookback is
	// how long before a kill a resolved warning still counts. Defaults 1024
	// and 10 min: ten minutes of a node with a hundred warnings.
	History  int
	Lookback time.Duration
}

// MiB is a mebibyte in bytes.
const MiB = 1 << 20

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		NearLimitRatio:          0.90,
		NearLimitResolveRatio:   0.85,
		NearLimitFor:            30 * time.Second,
		NearLimitApproachRatio:  0.60,
		NearLimitApproachWithin: time.Minute,
		LimitReclaimRises:       2,
		LimitReclaimMinRatio:    0.85,
		LimitReclaimQuiet:       30 * time.Second,
		PressureOpen:            10,
		PressureResolve:         5,
		NodeLowMargin:           0.05,
		NodeLowMinMargin:        256 * MiB,
		NodeLowResolveMargin:    0.075,
		ForecastWindow:          2 * time.Minute,
		ForecastMaxPoints:       120,
		ForecastMinPoints:       3,
		ForecastMinSpan:         20 * time.Second,
		ForecastMinR2:           0.9,
		ForecastResolveR2:       0.7,
		ForecastHorizon:         10 * time.Minute,
		ForecastResolveHorizon:  15 * time.Minute,
		ForecastMinRatio:        0.5,
		UpdateChange:            0.25,
		UpdateMinGap:            10 * time.Second,
		UpdateEvery:             time.Minute,
		GoneAfter:               30 * time.Second,
		MaxCgroups:              4096,
		History:                 1024,
		Lookback:                10 * time.Minute,
	}
}

// Validate reports the first value out of range, wrapping ErrConfig.
func (c Config) Validate() error {
	if c == (Config{}) {
		return fmt.Errorf("%w: empty: start from DefaultConfig", ErrConfig)
	}
	ratios := []struct {
		name string
		v    float64
	}{
		{"near-limit ratio", c.NearLimitRatio},
		{"near-limit resolve ratio", c.NearLimitResolveRatio},
		{"near-limit approach ratio", c.NearLimitApproachRatio},
		{"limit-reclaim min ratio", c.LimitReclaimMinRatio},
		{"node-low margin", c.NodeLowMargin},
		{"node-low resolve margin", c.NodeLowResolveMargin},
		{"forecast min R2", c.ForecastMinR2},
		{"forecast resolve R2", c.ForecastResolveR2},
		{"forecast min ratio", c.ForecastMinRatio},
		{"update change", c.UpdateChange},
	}
	for _, r := range ratios {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("%w: %s %v is not between 0 and 1", ErrConfig, r.name, r.v)
		}
	}
	if c.NodeLowMargin == 0 {
		return fmt.Errorf("%w: node-low margin must be above 0", ErrConfig)
	}
	ordered := []struct {
		what         string
		resolve, opn float64
	}{
		{"near-limit resolve ratio must be below its open ratio", c.NearLimitResolveRatio, c.NearLimitRatio},
		{"pressure resolve must be below its open threshold", c.PressureResolve, c.PressureOpen},
		{"forecast resolve R2 must be below its min R2", c.ForecastResolveR2, c.ForecastMinR2},
		// Reversed on purpose: node-low resolves with more memory available.
		{"node-low resolve margin must be above its open margin", c.NodeLowMargin, c.NodeLowResolveMargin},
		{"forecast resolve horizon must be beyond its horizon", c.ForecastHorizon.Seconds(), c.ForecastResolveHorizon.Seconds()},
	}
	for _, o := range ordered {
		if !(o.resolve < o.opn) {
			return fmt.Errorf("%w: %s", ErrConfig, o.what)
		}
	}
	if math.IsNaN(c.PressureOpen) || c.PressureOpen <= 0 || c.PressureOpen > 100 || c.PressureResolve < 0 {
		return fmt.Errorf("%w: pressure thresholds %v/%v are not percentages with 0 <= resolve < open <= 100", ErrConfig, c.PressureResolve, c.PressureOpen)
	}
	durations := []struct {
		name     string
		v        time.Duration
		positive bool // zero is out of range too
	}{
		{"near-limit for", c.NearLimitFor, false},
		{"near-limit approach within", c.NearLimitApproachWithin, true},
		{"limit-reclaim quiet", c.LimitReclaimQuiet, false},
		{"forecast window", c.ForecastWindow, true},
		{"forecast min span", c.ForecastMinSpan, true},
		{"forecast horizon", c.ForecastHorizon, true},
		{"update min gap", c.UpdateMinGap, false},
		{"update every", c.UpdateEvery, true},
		{"gone after", c.GoneAfter, false},
		{"lookback", c.Lookback, true},
	}
	for _, d := range durations {
		switch {
		case d.positive && d.v <= 0:
			return fmt.Errorf("%w: %s %v must be positive", ErrConfig, d.name, d.v)
		case d.v < 0:
			return fmt.Errorf("%w: %s %v is negative", ErrConfig, d.name, d.v)
		}
	}
	if c.ForecastMinSpan > c.ForecastWindow {
		return fmt.Errorf("%w: forecast min span %v is longer than its window %v", ErrConfig, c.ForecastMinSpan, c.ForecastWindow)
	}
	if c.ForecastMinPoints < 3 {
		return fmt.Errorf("%w: forecast min points %d is below 3 (two points always fit)", ErrConfig, c.ForecastMinPoints)
	}
	if c.ForecastMaxPoints < c.ForecastMinPoints {
		return fmt.Errorf("%w: forecast max points %d is below its min points %d", ErrConfig, c.ForecastMaxPoints, c.ForecastMinPoints)
	}
	if c.LimitReclaimRises < 1 {
		return fmt.Errorf("%w: limit-reclaim rises %d is below 1", ErrConfig, c.LimitReclaimRises)
	}
	if c.NodeLowMinMargin < 0 {
		return fmt.Errorf("%w: node-low min margin %d is negative", ErrConfig, c.NodeLowMinMargin)
	}
	if c.MaxCgroups < 1 || c.History < 1 {
		return fmt.Errorf("%w: max cgroups %d and history %d must be at least 1", ErrConfig, c.MaxCgroups, c.History)
	}
	return nil
}
