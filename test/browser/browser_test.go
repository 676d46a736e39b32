package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The pods of the scenario where a BestEffort pod was killed while a
// Burstable pod grew (node-besteffort-collateral).
const (
	bestEffortPod = "3c4d5e6f-7081-4c3d-8e4f-5a6b7c8d9e0f"
	burstablePod  = "4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a"
)

// a11y lists what is wrong with the page's structure: its language,
// title, one h1 and no skipped heading level, a label for every form
// control, text for every link, hidden decorative graphics, header cells
// in tables, a main landmark.
const a11y = `(() => {
	const problems = [];
	if (document.documentElement.lang !== 'en') problems.push('html has no lang="en"');
	if (!document.title.trim()) problems.push('no title');
	const h1 = document.querySelectorAll('h1').length;
	if (h1 !== 1) problems.push(h1 + ' h1 elements');
	let last = 0;
	document.querySelectorAll('h1, h2, h3, h4, h5, h6').forEach(h => {
		const level = +h.tagName[1];
		if (level > last + 1) problems.push('heading level skips to ' + h.tagName + ': ' + h.textContent.trim());
		last = level;
	});
	document.querySelectorAll('input, select, textarea').forEach(c => {
		const label = c.labels && c.labels.length ? c.labels[0].textContent.trim() : '';
		if (!label && !c.getAttribute('aria-label')) problems.push('form control without a label: ' + c.outerHTML);
	});
	document.querySelectorAll('button').forEach(b => { if (!b.textContent.trim()) problems.push('button without text'); });
	document.querySelectorAll('a').forEach(a => { if (!a.textContent.trim()) problems.push('link without text: ' + a.href); });
	document.querySelectorAll('svg').forEach(s => {
		if (s.getAttribute('aria-hidden') !== 'true' && !s.getAttribute('aria-label')) problems.push('svg neither hidden nor labelled');
	});
	document.querySelectorAll('table').forEach(t => { if (!t.querySelector('thead th[scope=col]')) problems.push('table without column headers'); });
	if (document.querySelectorAll('main').length !== 1) problems.push('not one main landmark');
	return problems;
})()`

// checkPage asserts the page's status line and structure.
func checkPage(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	if problems := eval[[]string](t, ctx, a11y); len(problems) > 0 {
		t.Errorf("%s: accessibility problems:\n  %s", what, strings.Join(problems, "\n  "))
	}
}

// rows returns the data-id of the rows of the live table.
const rowsJS = `Array.from(document.querySelectorAll('#live tbody tr')).map(r => r.getAttribute('data-id'))`

// liveKill is a new kill on worker-2: the container-limit scenario's real
// kill, on another node and boot, now, with the names an agent that
// reaches the container runtime adds.
func liveKill(t *testing.T) *pb.Event {
	t.Helper()
	var e *pb.Event
	for _, ev := range readScenario(t, "container-limit") {
		if ev.GetOom() != nil {
			e = proto.Clone(ev).(*pb.Event)
			break
		}
	}
	e.Node, e.BootId, e.Id = "worker-2", "2f7c1a9e-5b3d-4c8e-9a71-0d6e4b2c8f13", ""
	e.Time = timestamppb.Now()
	k := e.GetOom()
	for _, w := range []*pb.Workload{k.GetVictims()[0].GetWorkload(), k.GetTrigger().GetWorkload(), k.GetCulprit().GetWorkload()} {
		if w != nil {
			w.Namespace, w.PodName, w.ContainerName = "shop", "cart-7d9c5", "api"
		}
	}
	return e
}

// TestBrowser drives the pages as an SRE would, in order: the incidents
// page, a kill arriving live, the filters, every scenario's incident page,
// the pod pages, and an error page, with screenshots of each.
func TestBrowser(t *testing.T) {
	path := chromium(t)
	start := time.Now()
	f := startFleet(t)
	t.Logf("aggregator filled with the %d scenarios in %v", len(scenarios), time.Since(start).Round(time.Millisecond))
	ctx := browser(t, path)
	t.Logf("chromium started (%v since the start)", time.Since(start).Round(time.Millisecond))

	// Six scenarios, each its own boot: six incidents, newest first.
	t.Run("incidents", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(f.base+"/"))
		ids := eval[[]string](t, ctx, rowsJS)
		if len(ids) != len(scenarios) {
			t.Fatalf("%d incident rows, want %d: %v", len(ids), len(scenarios), ids)
		}
		// The collateral scenario ran last: its incident is the newest.
		if !strings.Contains(ids[0], "c561ffad") {
			t.Errorf("first row %s, want the node-besteffort-collateral incident", ids[0])
		}
		text := eval[string](t, ctx, `document.querySelector('#live tbody tr').innerText`)
		for _, want := range []string{"e2e-node", "node-level", "2", "1 collateral", "pod batch/etl-2 › etl", "Burstable", "211.0 MiB"} {
			if !strings.Contains(text, want) {
				t.Errorf("first row %q: no %q", text, want)
			}
		}
		if title := eval[string](t, ctx, `document.title`); title != "Incidents · oomwatch" {
			t.Errorf("title %q", title)
		}
		checkPage(t, ctx, "incidents page")
		// Keyboard: the first Tab reaches the skip link, which shows.
		do(t, ctx, chromedp.KeyEvent(kb.Tab))
		if got := eval[string](t, ctx, `document.activeElement.className + ' ' + (document.activeElement.getBoundingClientRect().left >= 0)`); got != "skip true" {
			t.Errorf("first Tab focuses %q, want the visible skip link", got)
		}
		screenshot(t, ctx, "incidents")
	})

	t.Run("live", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(f.base+"/"))
		before := eval[[]string](t, ctx, rowsJS)
		// The page's EventSource is connected when the aggregator counts
		// a watcher.
		deadline := time.Now().Add(10 * time.Second)
		for f.agg.Server().Stats().Watchers < 1 {
			if time.Now().After(deadline) {
				t.Fatal("the page did not open its live connection")
			}
			time.Sleep(20 * time.Millisecond)
		}
		eval[bool](t, ctx, `(window.notReloaded = true)`)
		kill := liveKill(t)
		f.ingest(t, kill)
		waitFor(t, ctx, "the new kill's row", `!!document.querySelector('#live tr[data-id^="worker-2/"]')`, 15*time.Second)
		if !eval[bool](t, ctx, `window.notReloaded === true`) {
			t.Fatal("the page was reloaded: the row must come without a reload")
		}
		after := eval[[]string](t, ctx, rowsJS)
		if len(after) != len(before)+1 || !strings.HasPrefix(after[0], "worker-2/") {
			t.Fatalf("rows after the kill %v, before %v: want the new incident first", after, before)
		}
		row := eval[string](t, ctx, `document.querySelector('#live tr[data-id^="worker-2/"]').innerText`)
		for _, want := range []string{"worker-2", "limit", "shop/cart-7d9c5 › api", "34.0 MiB"} {
			if !strings.Contains(row, want) {
				t.Errorf("new row %q: no %q", row, want)
			}
		}
		if !eval[bool](t, ctx, `document.querySelector('#live tr[data-id^="worker-2/"]').classList.contains('fresh')`) {
			t.Error("the new row is not marked fresh")
		}
		// Screen readers hear it: the status region says what came.
		waitFor(t, ctx, "the live announcement", `document.getElementById('live-status').textContent.includes('worker-2')`, 5*time.Second)
		screenshot(t, ctx, "incidents-live")
	})

	t.Run("filters", func(t *testing.T) {
		// Ingested again when this runs alone; a duplicate otherwise.
		f.ingest(t, liveKill(t))
		total := len(scenarios) + 1
		do(t, ctx, chromedp.Navigate(f.base+"/"))
		if n := len(eval[[]string](t, ctx, rowsJS)); n != total {
			t.Fatalf("%d rows unfiltered, want %d", n, total)
		}
		submitted := func(what, query string, want int, check func(ids []string) string) {
			t.Helper()
			waitFor(t, ctx, what, fmt.Sprintf(`location.search === %q && document.readyState === 'complete'`, query), 10*time.Second)
			ids := eval[[]string](t, ctx, rowsJS)
			if len(ids) != want {
				t.Errorf("%s: %d rows, want %d: %v", what, len(ids), want, ids)
			}
			if msg := check(ids); msg != "" {
				t.Errorf("%s: %s", what, msg)
			}
		}
		all := func(prefix string) func([]string) string {
			return func(ids []string) string {
				for _, id := range ids {
					if !strings.HasPrefix(id, prefix) {
						return "row " + id + " is not of " + prefix
					}
				}
				return ""
			}
		}
		// Node, typed and submitted with the keyboard.
		do(t, ctx, chromedp.SendKeys(chromedp.ID("f-node"), "e2e-node"+kb.Enter))
		submitted("node e2e-node", "?node=e2e-node&namespace=&kind=", len(scenarios), all("e2e-node/"))
		// Namespace: only the named kill has one.
		do(t, ctx, chromedp.Navigate(f.base+"/"), chromedp.SendKeys(chromedp.ID("f-namespace"), "shop"+kb.Enter))
		submitted("namespace shop", "?node=&namespace=shop&kind=", 1, all("worker-2/"))
		// Kind: the two node-level scenarios.
		do(t, ctx, chromedp.Navigate(f.base+"/"), chromedp.SetValue(chromedp.ID("f-kind"), "node"), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		submitted("kind node", "?node=&namespace=&kind=node", 2, func(ids []string) string {
			for _, id := range ids {
				if !strings.Contains(id, "c561ffad") && !strings.Contains(id, "56a661f9") {
					return "row " + id + " is not a node-level scenario"
				}
			}
			return ""
		})
		// Collateral only: the scenarios with a collateral victim (the
		// two node-level ones, the pod-limit sidecar). The storm's kills,
		// recorded by an agent before the three-valued verdict with
		// victims it could not place, read as unknown, not collateral.
		do(t, ctx, chromedp.Navigate(f.base+"/"), chromedp.Click(chromedp.ID("f-collateral")), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		submitted("collateral only", "?node=&namespace=&kind=&collateral=1", 3, func(ids []string) string {
			text := eval[string](t, ctx, `document.querySelector('#live tbody').innerText`)
			if strings.Contains(text, "worker-2") || strings.Count(text, "collateral") != 3 {
				return "rows " + text
			}
			return ""
		})
		if !eval[bool](t, ctx, `document.getElementById('f-collateral').checked`) {
			t.Error("the collateral box is not checked on the filtered page")
		}
		checkPage(t, ctx, "filtered incidents page")
		screenshot(t, ctx, "incidents-collateral")
		// A filter that matches nothing says so.
		do(t, ctx, chromedp.Navigate(f.base+"/?node=nowhere"))
		if text := eval[string](t, ctx, `document.getElementById('live').innerText`); !strings.Contains(text, "No incidents match these filters.") {
			t.Errorf("empty result: %q", text)
		}
	})

	t.Run("incident pages", func(t *testing.T) {
		for _, sc := range scenarios {
			do(t, ctx, chromedp.Navigate(f.base+f.incidents[sc]))
			h1 := eval[string](t, ctx, `document.querySelector('h1').textContent`)
			cards := eval[int](t, ctx, `document.querySelectorAll('article.kill').length`)
			kills := eval[int](t, ctx, `document.querySelectorAll('table.timeline tbody tr').length`)
			if !strings.Contains(h1, "e2e-node") || cards == 0 || kills < cards {
				t.Errorf("%s: h1 %q, %d kill cards, %d timeline rows", sc, h1, cards, kills)
			}
			checkPage(t, ctx, sc+" incident page")
			screenshot(t, ctx, "incident-"+sc)
		}

		// The scenario of the README's picture: a BestEffort pod killed while a
		// Burstable pod grew.
		do(t, ctx, chromedp.Navigate(f.base+f.incidents["node-besteffort-collateral"]))
		page := f.base + eval[string](t, ctx, `location.pathname`)
		if !strings.HasPrefix(page, f.base+"/incidents/e2e-node/c561ffad-") {
			t.Fatalf("the kill's address led to %s", page)
		}
		text := eval[string](t, ctx, `document.querySelector('main').innerText`)
		for _, want := range []string{
			"Node e2e-node ran out of memory",
			"2 kills in 143 ms, 1 collateral",
			"The collateral victim was hog (pid 231) in pod tools/debug-shell › shell (BestEffort)",
			"Collateral: victim of pod batch/etl-2 › etl",
			"chosen for its oom_score_adj rather than its size",
			"container shell (no request, no limit)",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("incident page: no %q in\n%s", want, text)
			}
		}
		// Kill 1's chart: the culprit's pod (also the trigger) first, the
		// victim marked, each with its size in words.
		bars := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#kill-342 li.bar')).map(b => b.innerText.replace(/\s+/g, ' '))`)
		if len(bars) != 3 {
			t.Fatalf("kill 1 chart: %d bars %v, want 3", len(bars), bars)
		}
		for i, want := range [][]string{{"pod batch/etl-2", "Burstable", "TRIGGER", "CULPRIT", "200.4 MiB"}, {"the root cgroup", "65.2 MiB"}, {"pod tools/debug-shell", "BestEffort", "VICTIM", "11.9 MiB"}} {
			for _, w := range want {
				if !strings.Contains(bars[i], w) {
					t.Errorf("bar %d %q: no %q", i+1, bars[i], w)
				}
			}
		}
		// The victim's bar is drawn shorter than the culprit's.
		widths := eval[[]float64](t, ctx, `Array.from(document.querySelectorAll('#kill-342 rect.bar-fill')).map(r => r.getBoundingClientRect().width)`)
		if len(widths) != 3 || !(widths[0] > widths[1] && widths[1] > widths[2] && widths[2] > 0) {
			t.Errorf("bar widths %v: want decreasing, all drawn", widths)
		}
		// The kernel log's link opens it.
		if eval[bool](t, ctx, `document.getElementById('kill-342-kernel').open`) {
			t.Error("the kernel log is open before it is asked for")
		}
		do(t, ctx, chromedp.Navigate(page+"#kill-342-kernel"))
		waitFor(t, ctx, "the kernel log to open", `document.getElementById('kill-342-kernel').open`, 5*time.Second)
		if pre := eval[string](t, ctx, `document.querySelector('#kill-342-kernel pre').textContent`); !strings.Contains(pre, "Out of memory: Killed process 231 (hog)") {
			t.Errorf("kernel lines: %.200q", pre)
		}

		// The README's pictures: the top of the page at 1200 px, and the
		// page on a phone.
		do(t, ctx, chromedp.Navigate(page), chromedp.EmulateViewport(1200, 1560))
		wide := viewportShot(t, ctx)
		do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("on a phone the page is %d px wide: it scrolls sideways", w)
		}
		screenshot(t, ctx, "incident-node-besteffort-collateral-phone")
		phoneTop := viewportShot(t, ctx)
		do(t, ctx, chromedp.EmulateViewport(1200, 900))
		if err := os.WriteFile(filepath.Join(shotDir, "readme-incident.png"), wide, 0o644); err != nil {
			t.Fatal(err)
		}
		if *update {
			for name, png := range map[string][]byte{"incident.png": wide, "incident-phone.png": phoneTop} {
				if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	t.Run("pod pages", func(t *testing.T) {
		for _, tc := range []struct {
			pod, name string
			roles     []string
		}{
			{pod: bestEffortPod, name: "pod-besteffort", roles: []string{"VICTIM"}},
			{pod: burstablePod, name: "pod-burstable", roles: []string{"VICTIM CULPRIT", "TRIGGER CULPRIT"}},
		} {
			do(t, ctx, chromedp.Navigate(f.base+"/pods/"+tc.pod))
			roles := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#live tbody tr td:nth-child(3)')).map(td => td.innerText.trim().replace(/\s+/g, ' '))`)
			if strings.Join(roles, "|") != strings.Join(tc.roles, "|") {
				t.Errorf("%s: roles %q, want %q", tc.name, roles, tc.roles)
			}
			checkPage(t, ctx, tc.name)
			screenshot(t, ctx, tc.name)
		}
		// From the pod page to the kill on its incident page.
		do(t, ctx, chromedp.Navigate(f.base+"/pods/"+bestEffortPod), chromedp.Click(chromedp.CSS(`#live tbody tr a[href^="/kills/"]`)))
		waitFor(t, ctx, "the incident page", `location.pathname.startsWith('/incidents/') && location.hash === '#kill-342' && document.readyState === 'complete'`, 10*time.Second)
	})

	t.Run("errors", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(f.base+"/?kind=bogus"))
		if h1 := eval[string](t, ctx, `document.querySelector('h1').textContent`); h1 != "400 Bad Request" {
			t.Errorf("bad filter: h1 %q", h1)
		}
		do(t, ctx, chromedp.Navigate(f.base+"/incidents/e2e-node/no-such-boot/1"))
		if h1 := eval[string](t, ctx, `document.querySelector('h1').textContent`); h1 != "404 Not Found" {
			t.Errorf("unknown incident: h1 %q", h1)
		}
		checkPage(t, ctx, "error page")
		screenshot(t, ctx, "error-404")
	})
}
