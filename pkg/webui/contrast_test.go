package webui

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// schemes reads the colour variables of app.css: the light scheme of
// :root, and the dark one of its prefers-color-scheme block.
func schemes(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	light, dark, ok := strings.Cut(css, "@media (prefers-color-scheme: dark)")
	if !ok {
		t.Fatal("app.css has no dark scheme")
	}
	vars := regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6});`)
	read := func(block string) map[string]string {
		out := map[string]string{}
		for _, m := range vars.FindAllStringSubmatch(block, -1) {
			out[m[1]] = m[2]
		}
		return out
	}
	// The dark block is the first rule set after the media query.
	dark = dark[:strings.Index(dark, "}\n}")]
	out := map[string]map[string]string{"light": read(light), "dark": read(dark)}
	// Every variable the rules use is defined in both.
	for _, m := range regexp.MustCompile(`var\(--([a-z-]+)\)`).FindAllStringSubmatch(css, -1) {
		for name, s := range out {
			if _, ok := s[m[1]]; !ok {
				t.Errorf("--%s is used but not defined in the %s scheme", m[1], name)
			}
		}
	}
	return out
}

// luminance is the WCAG relative luminance of "#rrggbb".
func luminance(hex string) float64 {
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.04045 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// TestContrast checks every foreground the CSS puts on a background.
func TestContrast(t *testing.T) {
	text := [][2]string{
		{"fg", "bg"}, {"fg", "surface"}, {"muted", "bg"}, {"muted", "surface"}, {"link", "bg"}, {"link", "surface"},
		{"collateral-fg", "collateral-bg"}, {"badge-fg", "badge-bg"}, {"node-fg", "node-bg"},
		{"victim-fg", "victim-bg"}, {"trigger-fg", "trigger-bg"}, {"culprit-fg", "culprit-bg"},
		{"fg", "fresh-bg"}, {"link", "fresh-bg"}, {"muted", "fresh-bg"}, {"fg", "code-bg"}, {"button-fg", "button-bg"},
	}
	graphics := [][2]string{
		{"bar", "surface"}, {"victim-bar", "surface"}, {"culprit-bar", "surface"}, {"bar", "bg"}, {"victim-bar", "bg"},
		{"border", "bg"}, {"focus", "bg"}, {"focus", "surface"},
	}
	for name, vars := range schemes(t) {
		check := func(pairs [][2]string, min float64) {
			for _, p := range pairs {
				fg, bg := vars[p[0]], vars[p[1]]
				if fg == "" || bg == "" {
					t.Errorf("%s: --%s or --%s is not a #rrggbb colour", name, p[0], p[1])
					continue
				}
				if c := contrast(fg, bg); c < min {
					t.Errorf("%s: --%s %s on --%s %s: contrast %.2f, want at least %.1f", name, p[0], fg, p[1], bg, c, min)
				}
			}
		}
		check(text, 4.5)
		check(graphics, 3)
	}
	// The formula itself: black on white is 21:1.
	if c := contrast("#000000", "#ffffff"); math.Abs(c-21) > 0.01 {
		t.Fatalf("contrast of black on white %.2f", c)
	}
}
