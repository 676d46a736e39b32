package exits

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/oomwatch/oomwatch/pkg/cri"
)

// exitKey identifies one exit: a container ID exits once, and its finish
// time tells a replay of the same exit from a (never seen) reuse.
func exitKey(c cri.Container) string {
	fin := "unknown"
	if !c.FinishedAt.IsZero() {
		fin = strconv.FormatInt(c.FinishedAt.UnixNano(), 10)
	}
	return c.ID + "/" + fin
}

// Seq returns the stable sequence number of an exit event: a hash of the
// container ID and the finish time, so that the same exit reported again
// (after an agent restart) is deduplicated by the aggregator. It is never
// negative.
func Seq(c cri.Container) int64 {
	c.ID = normID(c.ID)
	return hash63("exit", exitKey(c))
}

// childSeq is the sequence number of an oom-child event: one per container
// and story, named by the story's first OOM kill event.
func childSeq(cid, oomID string) int64 {
	return hash63("oom-child", cid+"/"+oomID)
}

func hash63(kind, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int64(h.Sum64() & (1<<63 - 1))
}

func normID(id string) string {
	return strings.ToLower(strings.TrimSpace(id))
}
