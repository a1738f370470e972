#include "textflag.h"

// Hand-written AVX2 helpers of the GEMM: the bias-gradient row add and the
// packing routines. The micro-kernels are generated into
// gemm_kernels_amd64.s (go generate).

// func addRowAVX2(dst, src *float32, n int)
TEXT ·addRowAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
add32:
	CMPQ CX, $32
	JLT  add8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VADDPS  (SI), Y0, Y0
	VADDPS  32(SI), Y1, Y1
	VADDPS  64(SI), Y2, Y2
	VADDPS  96(SI), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  add32
add8:
	CMPQ CX, $8
	JLT  add1
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  add8
add1:
	TESTQ CX, CX
	JZ   adddone
	VMOVSS (DI), X0
	VADDSS (SI), X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ $4, SI
	DECQ CX
	JMP  add1
adddone:
	VZEROUPPER
	RET

// One 8x8 transpose step of gemmPackT8: reads 8 floats at offset DX of
// each of the 8 row pointers R8-R13, AX, BX and writes column k of that
// block to DI + k*SI for k = 0..7. Rows 0-3 go to the low 128-bit lanes,
// rows 4-7 to the high lanes, so each lane is a 4x4 transpose.
#define T8HALF(off) \
	VMOVUPS     off(R8)(DX*1), X0; \
	VINSERTF128 $1, off(R12)(DX*1), Y0, Y0; \
	VMOVUPS     off(R9)(DX*1), X1; \
	VINSERTF128 $1, off(R13)(DX*1), Y1, Y1; \
	VMOVUPS     off(R10)(DX*1), X2; \
	VINSERTF128 $1, off(AX)(DX*1), Y2, Y2; \
	VMOVUPS     off(R11)(DX*1), X3; \
	VINSERTF128 $1, off(BX)(DX*1), Y3, Y3; \
	VUNPCKLPS   Y1, Y0, Y4; \
	VUNPCKHPS   Y1, Y0, Y5; \
	VUNPCKLPS   Y3, Y2, Y6; \
	VUNPCKHPS   Y3, Y2, Y7; \
	VSHUFPS     $0x44, Y6, Y4, Y8; \
	VSHUFPS     $0xEE, Y6, Y4, Y9; \
	VSHUFPS     $0x44, Y7, Y5, Y10; \
	VSHUFPS     $0xEE, Y7, Y5, Y11; \
	VMOVUPS     Y8, (DI); \
	ADDQ        SI, DI; \
	VMOVUPS     Y9, (DI); \
	ADDQ        SI, DI; \
	VMOVUPS     Y10, (DI); \
	ADDQ        SI, DI; \
	VMOVUPS     Y11, (DI); \
	ADDQ        SI, DI

// func gemmPackT8(dst *float32, dstStride int, src *float32, ld int, rows int, n int)
// For p < n (a multiple of 8) and r < 8: dst[p*dstStride + r] =
// src[min(r, rows-1)*ld + p]. It writes 8 floats at every destination row,
// so with dstStride < 8 each store spills into the next row's slot (which
// the next store overwrites) and the last one 8-dstStride floats past it.
TEXT ·gemmPackT8(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), SI
	SHLQ $2, SI
	MOVQ src+16(FP), R8
	MOVQ ld+24(FP), DX
	SHLQ $2, DX
	MOVQ rows+32(FP), CX
	// Row pointers: row r = src + min(r, rows-1)*ld.
	MOVQ R8, R9
	CMPQ CX, $2
	JLT  t8r2
	ADDQ DX, R9
t8r2:
	MOVQ R9, R10
	CMPQ CX, $3
	JLT  t8r3
	ADDQ DX, R10
t8r3:
	MOVQ R10, R11
	CMPQ CX, $4
	JLT  t8r4
	ADDQ DX, R11
t8r4:
	MOVQ R11, R12
	CMPQ CX, $5
	JLT  t8r5
	ADDQ DX, R12
t8r5:
	MOVQ R12, R13
	CMPQ CX, $6
	JLT  t8r6
	ADDQ DX, R13
t8r6:
	MOVQ R13, AX
	CMPQ CX, $7
	JLT  t8r7
	ADDQ DX, AX
t8r7:
	MOVQ AX, BX
	CMPQ CX, $8
	JLT  t8r8
	ADDQ DX, BX
t8r8:
	MOVQ n+40(FP), CX
	XORQ DX, DX
t8loop:
	CMPQ CX, $8
	JLT  t8done
	T8HALF(0)
	T8HALF(16)
	ADDQ $32, DX
	SUBQ $8, CX
	JMP  t8loop
t8done:
	VZEROUPPER
	RET

// func gemmPackCopy16(dst, src *float32, ld int, n int)
// dst[p*16 : p*16+16] = src[p*ld : p*ld+16] for p < n.
TEXT ·gemmPackCopy16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $2, DX
	MOVQ n+24(FP), CX
	TESTQ CX, CX
	JZ   c16done
c16loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ DX, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  c16loop
c16done:
	VZEROUPPER
	RET

// func gemmPackCopy6(dst, src *float32, ld int, n int)
// dst[p*6 : p*6+6] = src[p*ld : p*ld+6] for p < n.
TEXT ·gemmPackCopy6(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $2, DX
	MOVQ n+24(FP), CX
	TESTQ CX, CX
	JZ   c6done
c6loop:
	MOVUPS (SI), X0
	MOVQ   16(SI), X1
	MOVUPS X0, (DI)
	MOVQ   X1, 16(DI)
	ADDQ DX, SI
	ADDQ $24, DI
	DECQ CX
	JNZ  c6loop
c6done:
	RET
