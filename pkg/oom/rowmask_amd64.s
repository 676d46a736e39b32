#include "textflag.h"

// MASKS sets R9 to the mask of the spaces among the 16 bytes in X0, and
// R10 to the mask of their digits (X0 - '0' <= 9 unsigned). X1-X3 hold
// the constants; X0, X4 and X5 are overwritten.
#define MASKS \
	MOVO X0, X4; \
	PCMPEQB X1, X4; \
	PMOVMSKB X4, R9; \
	PSUBB X2, X0; \
	MOVO X0, X5; \
	PMINUB X3, X5; \
	PCMPEQB X0, X5; \
	PMOVMSKB X5, R10

// STORE writes R9 and R10 as the 16 bits of *sp and *dg for the block at
// byte BX.
#define STORE \
	MOVQ BX, R11; \
	SHRQ $3, R11; \
	MOVW R9, (DI)(R11*1); \
	MOVW R10, (DX)(R11*1)

// func rowMasks(b []byte, sp, dg *[2]uint64)
//
// Sets bit i of *sp when b[i] is a space and of *dg when b[i] is an ASCII
// digit, 16 bytes at a time (SSE2, which every amd64 CPU has). The caller
// ensures 16 <= len(b) <= 128 and zeroes both masks: bits at and beyond
// len(b) stay zero. The last, partial block is read as the 16 bytes that
// end the slice, so nothing past it is read.
TEXT ·rowMasks(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	MOVQ sp+24(FP), DI
	MOVQ dg+32(FP), DX

	MOVQ $0x2020202020202020, AX
	MOVQ AX, X1
	PUNPCKLQDQ X1, X1
	MOVQ $0x3030303030303030, AX
	MOVQ AX, X2
	PUNPCKLQDQ X2, X2
	MOVQ $0x0909090909090909, AX
	MOVQ AX, X3
	PUNPCKLQDQ X3, X3

	XORQ BX, BX

block:
	LEAQ 16(BX), R8
	CMPQ R8, CX
	JA   tail
	MOVOU (SI)(BX*1), X0
	MASKS
	STORE
	MOVQ R8, BX
	JMP  block

tail:
	CMPQ BX, CX
	JEQ  done
	// The 16 bytes ending the slice; the first R12 of them belong to
	// the block before and are shifted out.
	MOVQ CX, R8
	SUBQ $16, R8
	MOVOU (SI)(R8*1), X0
	MASKS
	MOVQ BX, CX
	SUBQ R8, CX
	SHRL CX, R9
	SHRL CX, R10
	STORE

done:
	RET
