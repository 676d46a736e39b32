package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestZZWalPages(t *testing.T) {
	s, path := open(t)
	close(s.ckStop)
	<-s.ckDone
	s.ck.Close()
	s.ck = nil
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	nodePods := make([][]int, 1000)
	for i := range nodePods {
		for range 8 {
			nodePods[i] = append(nodePods[i], r.IntN(5000))
		}
	}
	seqs := make([]int64, 1000)
	var n int64
	batch := func(k int) []*pb.Event {
		evs := make([]*pb.Event, k)
		for i := range evs {
			node := r.IntN(1000)
			pod := nodePods[node][r.IntN(8)]
			seqs[node]++
			ps := strconv.Itoa(pod)
			e := oom("node-"+strconv.Itoa(node), seqs[node], time.Duration(n)*time.Millisecond, "limit", "ns-"+strconv.Itoa(pod%50), "pod-"+ps, "app")
			k := e.GetOom()
			for j := range 40 {
				k.Lines = append(k.Lines, fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %5d java", j, r.IntN(1<<16), r.IntN(1000), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1000)))
			}
			evs[i] = e
			n++
		}
		return evs
	}
	ckpt := func() {
		var a, b, c int
		if err := s.wc.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
	}
	warm, _ := strconv.Atoi(os.Getenv("ZZ_WARM"))
	if warm == 0 {
		warm = 60
	}
	for i := range warm {
		if _, err := s.Put(ctx, batch(3500)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			ckpt()
		}
	}
	ckpt()
	if _, err := s.Put(ctx, batch(3500)); err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.BigEndian.Uint32(wal[8:12]))
	pages := map[uint32]int{}
	frames := 0
	for off := 32; off+24+ps <= len(wal); off += 24 + ps {
		pages[binary.BigEndian.Uint32(wal[off:off+4])]++
		frames++
	}
	rows, err := s.wc.QueryContext(ctx, "SELECT name, pageno FROM dbstat")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[uint32]string{}
	for rows.Next() {
		var name string
		var p uint32
		rows.Scan(&name, &p)
		owner[p] = name
	}
	rows.Close()
	by := map[string][2]int{}
	for p, c := range pages {
		x := by[owner[p]]
		x[0]++
		x[1] += c
		by[owner[p]] = x
	}
	var names []string
	for k := range by {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Printf("events in store %d, page size %d, frames %d, distinct pages %d, per event %.2f frames %.1f kB\n", n, ps, frames, len(pages), float64(frames)/3500, float64(frames*ps)/3500/1000)
	for _, k := range names {
		fmt.Printf("  %-24s distinct %6d frames %6d  per event %.2f\n", k, by[k][0], by[k][1], float64(by[k][0])/3500)
	}
}
