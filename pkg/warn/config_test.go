package warn

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"zero config", func(c *Config) { *c = Config{} }, "start from DefaultConfig"},
		{"ratio above 1", func(c *Config) { c.NearLimitRatio = 1.2 }, "near-limit ratio 1.2 is not between 0 and 1"},
		{"ratio NaN", func(c *Config) { c.ForecastMinRatio = math.NaN() }, "forecast min ratio NaN"},
		{"resolve above open", func(c *Config) { c.NearLimitResolveRatio = 0.95 }, "near-limit resolve ratio must be below its open ratio"},
		{"pressure resolve above open", func(c *Config) { c.PressureResolve = 20 }, "pressure resolve must be below"},
		{"pressure above 100", func(c *Config) { c.PressureOpen = 120 }, "not percentages"},
		{"pressure NaN", func(c *Config) { c.PressureOpen = math.NaN() }, "pressure resolve must be below"},
		{"node-low resolve inside open", func(c *Config) { c.NodeLowResolveMargin = 0.04 }, "node-low resolve margin must be above"},
		{"node-low no margin", func(c *Config) { c.NodeLowMargin = 0 }, "node-low margin must be above 0"},
		{"node-low negative floor", func(c *Config) { c.NodeLowMinMargin = -1 }, "node-low min margin -1 is negative"},
		{"forecast R2 order", func(c *Config) { c.ForecastResolveR2 = 0.95 }, "forecast resolve R2 must be below"},
		{"forecast horizon order", func(c *Config) { c.ForecastResolveHorizon = 5 * time.Minute }, "forecast resolve horizon must be beyond"},
		{"negative wait", func(c *Config) { c.NearLimitFor = -time.Second }, "near-limit for -1s is negative"},
		{"no window", func(c *Config) { c.ForecastWindow = 0 }, "forecast window 0s must be positive"},
		{"span beyond window", func(c *Config) { c.ForecastMinSpan = 3 * time.Minute }, "longer than its window"},
		{"two points", func(c *Config) { c.ForecastMinPoints = 2 }, "two points always fit"},
		{"max below min points", func(c *Config) { c.ForecastMaxPoints = 2 }, "max points 2 is below its min points 3"},
		{"no rises", func(c *Config) { c.LimitReclaimRises = 0 }, "limit-reclaim rises 0"},
		{"no cgroups", func(c *Config) { c.MaxCgroups = 0 }, "max cgroups 0"},
		{"no history", func(c *Config) { c.History = 0 }, "history 0"},
		{"no lookback", func(c *Config) { c.Lookback = 0 }, "lookback 0s must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrConfig saying %q", err, tc.want)
			}
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Errorf("New: %v", err)
			}
		})
	}
}
