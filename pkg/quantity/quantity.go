// Package quantity reads Kubernetes resource quantities ("128Mi", "1G",
// "1.5Gi", "1e9", "500m") as whole numbers, rounded as Kubernetes rounds
// them. It exists so that the agent does not link k8s.io/apimachinery (and
// the serializers it brings) for one function: its binary, which is mapped
// into every node's memory, stays smaller. The tests check it against
// apimachinery's parser.
package quantity

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ErrSyntax reports a string that is not a quantity.
var ErrSyntax = errors.New("not a Kubernetes quantity (like 128Mi, 1G, 1.5Gi, 1e9)")

// ErrRange reports a quantity beyond an int64.
var ErrRange = errors.New("quantity out of range")

// maxLen bounds what is parsed (apimachinery's own quantities are short).
const maxLen = 64

// maxExponent bounds the power of 10 computed: a quantity is at most maxLen
// characters, so a non-zero one scaled by more is beyond an int64, or by
// less within 1 of zero.
const maxExponent = 2 * maxLen

// binary and decimal are the suffixes' powers of 2 and of 10.
var (
	binary  = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
	decimal = map[string]int{"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// Parse returns the quantity's value rounded away from zero to a whole
// number, as apimachinery's Quantity.Value does ("100m" is 1, "-1.5" is
// -2).
func Parse(s string) (int64, error) {
	if s == "" || len(s) > maxLen {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	num, suffix := split(s)
	v, ok := rat(num)
	if !ok {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	switch {
	case binary[suffix] != 0:
		v.Mul(v, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), binary[suffix])))
	case len(suffix) > 1 && (suffix[0] == 'e' || suffix[0] == 'E'):
		exp, ok := exponent(suffix[1:])
		if !ok {
			return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
		}
		scale(v, exp)
	default:
		exp, ok := decimal[suffix]
		if !ok {
			return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
		}
		scale(v, exp)
	}
	// Round away from zero, as Kubernetes rounds a quantity to a whole
	// number (QuoRem truncates, and r has the number's sign).
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(int64(r.Sign())))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%q: %w", s, ErrRange)
	}
	return q.Int64(), nil
}

// split cuts s into its signed number and its suffix.
func split(s string) (num, suffix string) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// rat reads [+-]digits[.digits], [+-].digits or [+-]digits. ("1." and
// ".5" as Kubernetes reads them). Kubernetes' parser takes some numbers
// without a digit ("+", ".", "Gi") as zero and refuses others ("Pi"):
// this one refuses them all.
func rat(num string) (*big.Rat, bool) {
	neg := false
	if num != "" && (num[0] == '+' || num[0] == '-') {
		neg, num = num[0] == '-', num[1:]
	}
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" && frac == "" || !digits(whole) || !digits(frac) {
		return nil, false
	}
	if whole == "" {
		whole = "0"
	}
	if frac != "" {
		whole += "." + frac
	}
	v, ok := new(big.Rat).SetString(whole)
	if !ok {
		return nil, false
	}
	if neg {
		v.Neg(v)
	}
	return v, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// exponent reads a decimal exponent as Kubernetes' parser does: an int64,
// then kept to its low 32 bits.
func exponent(s string) (int, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return int(int32(n)), true
}

// scale multiplies v by 10^exp. Beyond maxExponent a non-zero v is too
// large for an int64 (at most 63 digits after its point) or rounds to +-1
// (at most 63 before).
func scale(v *big.Rat, exp int) {
	switch {
	case v.Sign() == 0:
		return
	case exp > maxExponent:
		exp = maxExponent
	case exp < -maxExponent:
		v.SetInt64(int64(v.Sign()))
		v.Quo(v, big.NewRat(2, 1))
		return
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(math.Abs(float64(exp)))), nil)
	if exp >= 0 {
		v.Mul(v, new(big.Rat).SetInt(p))
	} else {
		v.Quo(v, new(big.Rat).SetInt(p))
	}
}
