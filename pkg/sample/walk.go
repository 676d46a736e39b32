package sample

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/workload"
)

// dirNode is a cgroup directory as the walk last saw it. Nodes live from
// one round to the next, so that a group's path strings and workload are
// made once in its life, not once a round.
type dirNode struct {
	name     string
	cgroup   string // as the kernel prints it: "/kubepods/burstable/pod<uid>"
	abs      string // the directory under the memory hierarchy
	wl       workload.Workload
	children map[string]*dirNode
	seen     uint64 // the last round that listed it
}

func newDirNode(name, cgroup, abs string) *dirNode {
	return &dirNode{name: name, cgroup: cgroup, abs: abs, wl: workload.FromCgroup(cgroup)}
}

// walk visits n and, unless it is a container, its children; it reports
// whether n's directory exists.
func (s *Sampler) walk(n *dirNode, depth int, dst *Snapshot) bool {
	if dst.Visited >= s.maxGroups {
		dst.Truncated = true
		return true
	}
	fd, err := unix.Open(n.abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !gone(err) && err != unix.ENOTDIR {
			dst.fail(fmt.Errorf("open %s: %w", n.abs, err))
		} else if depth > 0 {
			// Listed by its parent, removed since.
			dst.Vanished++
		}
		return false
	}
	defer unix.Close(fd)
	dst.Visited++
	if s.visitHook != nil {
		s.visitHook(n.cgroup)
	}

	switch {
	case n.wl.Kind == workload.KindPod || n.wl.Kind == workload.KindContainer:
		dst.Groups = append(dst.Groups, Group{})
		g := &dst.Groups[len(dst.Groups)-1]
		if !s.readGroup(fd, n, g, dst) {
			dst.Groups = dst.Groups[:len(dst.Groups)-1]
			dst.Vanished++
			return true
		}
	case depth == 0 && dst.Node.Kubepods.Workload.Cgroup == "":
		if !s.readGroup(fd, n, &dst.Node.Kubepods, dst) {
			dst.Node.Kubepods = Group{}
			return false
		}
	}
	switch n.wl.Kind {
	case workload.KindContainer:
		// Cgroups a container makes inside its own are its business.
		return true
	case workload.KindQoS, workload.KindPod:
	default:
		return true
	}

	for len(s.scratch) <= depth {
		s.scratch = append(s.scratch, nil)
	}
	kids, err := s.children(fd, n, s.scratch[depth][:0])
	s.scratch[depth] = kids
	if err != nil {
		if gone(err) {
			return true
		}
		dst.fail(fmt.Errorf("list %s: %w", n.abs, err))
	}
	for _, c := range kids {
		s.walk(c, depth+1, dst)
	}
	return true
}

// children lists the subdirectories of n (open as fd) into kids, in name
// order, and forgets the children that are gone. It reads directory
// entries with getdents into a reused buffer: os.ReadDir would allocate an
// entry for each of the ~50 control files of every pod cgroup, each round.
func (s *Sampler) children(fd int, n *dirNode, kids []*dirNode) ([]*dirNode, error) {
	for {
		m, err := unix.Getdents(fd, s.dirBuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return kids, err
		}
		if m <= 0 {
			break
		}
		b := s.dirBuf[:m]
		for len(b) >= direntNameOff {
			reclen := int(binary.NativeEndian.Uint16(b[direntReclenOff:]))
			if reclen < direntNameOff || reclen > len(b) {
				return kids, fmt.Errorf("list %s: bad directory entry", n.abs)
			}
			typ, name := b[direntTypeOff], cstring(b[direntNameOff:reclen])
			b = b[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			if typ == unix.DT_UNKNOWN {
				// Some file systems leave the type out.
				var st unix.Stat_t
				if unix.Fstatat(fd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
					continue
				}
			} else if typ != unix.DT_DIR {
				continue
			}
			c := n.children[string(name)]
			if c == nil {
				if n.children == nil {
					n.children = make(map[string]*dirNode)
				}
				nm := string(name)
				c = newDirNode(nm, joinCgroup(n.cgroup, nm), n.abs+"/"+nm)
				n.children[nm] = c
			}
			c.seen = s.round
			kids = append(kids, c)
		}
	}
	for k, c := range n.children {
		if c.seen != s.round {
			delete(n.children, k)
		}
	}
	slices.SortFunc(kids, func(a, b *dirNode) int { return strings.Compare(a.name, b.name) })
	return kids, nil
}

// Offsets in struct linux_dirent64.
const (
	direntReclenOff = int(unsafe.Offsetof(unix.Dirent{}.Reclen))
	direntTypeOff   = int(unsafe.Offsetof(unix.Dirent{}.Type))
	direntNameOff   = int(unsafe.Offsetof(unix.Dirent{}.Name))
)

// cstring is b up to its first NUL.
func cstring(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func joinCgroup(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}
