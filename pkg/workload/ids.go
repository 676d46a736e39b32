package workload

import "strings"

// normalizeUID returns the pod UID in lower case with dashes, or the 32 hex
// digits of a static pod, or "" when s is not a complete UID.
func normalizeUID(s string) string {
	switch len(s) {
	case 32:
		if !isHexChars(s) {
			return ""
		}
		return strings.ToLower(s)
	case 36:
		var b [36]byte
		for i := 0; i < 36; i++ {
			c := s[i]
			switch i {
			case 8, 13, 18, 23:
				if c != '-' && c != '_' {
					return ""
				}
				c = '-'
			default:
				if !isHex(c) {
					return ""
				}
				if 'A' <= c && c <= 'F' {
					c += 'a' - 'A'
				}
			}
			b[i] = c
		}
		if string(b[:]) == s {
			return s
		}
		return string(b[:])
	}
	return ""
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isHexChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isHex64 reports whether s is a full 64-digit lower-case hex container ID.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isIDChars reports whether s is a non-empty [0-9a-z]+ container ID.
func isIDChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9') && !('a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// isLXCName reports whether s can be an LXC container's name as
// oomwatch keeps it: letters, digits, '-', '_' and '.', at most 64 bytes
// (Proxmox's are numbers, LXD's and Incus's letters, digits and '-').
func isLXCName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9') && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// parseContainer parses "<prefix>-<id>.scope", "<prefix>-<id>", "<id>.scope"
// or "<id>"; rest is what follows the runtime prefix, "" without one. The ID is
// kept only when complete: closed by ".scope", or 64 hex digits.
func parseContainer(c string) (runtime, id string, conmon bool, rest string) {
	name, scoped := strings.CutSuffix(c, ".scope")
	for _, p := range containerPrefixes {
		if r, ok := strings.CutPrefix(name, p); ok {
			runtime, conmon = runtimeOfPrefix(p[:len(p)-1])
			if isHex64(r) || (scoped && isIDChars(r)) {
				id = r
			}
			return runtime, id, conmon, r
		}
	}
	if isHex64(name) {
		id = name
	}
	return "", id, false, ""
}

func runtimeOfPrefix(p string) (runtime string, conmon bool) {
	switch p {
	case "cri-containerd":
		return RuntimeContainerd, false
	case "crio":
		return RuntimeCRIO, false
	case "crio-conmon":
		return RuntimeCRIO, true
	case "docker":
		return RuntimeDocker, false
	case "libpod":
		return RuntimePodman, false
	case "libpod-conmon":
		return RuntimePodman, true
	}
	return "", false
}
