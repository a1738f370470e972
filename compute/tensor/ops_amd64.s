#include "textflag.h"

// AVX2 element-wise and row kernels. Each mirrors a Go function in ops*.go
// operation for operation (see the comments there); none uses FMA, so the
// Go twins need only explicit float32 conversions to match. Reductions
// follow the summation order described in ops.go: four accumulators over
// blocks of 32, folded to one, blocks of 8, a fixed horizontal fold, then a
// scalar tail in order. Element-wise kernels handle their last n%8 elements
// with masked loads and stores through the same vector code.
// Every function ends with VZEROUPPER.

#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, bits; \
	DATA name<>+4(SB)/4, bits; \
	DATA name<>+8(SB)/4, bits; \
	DATA name<>+12(SB)/4, bits; \
	DATA name<>+16(SB)/4, bits; \
	DATA name<>+20(SB)/4, bits; \
	DATA name<>+24(SB)/4, bits; \
	DATA name<>+28(SB)/4, bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(expLo, $0xc2ae0000)    // -87
CONST8(expHi, $0x42b00000)    // 88
CONST8(expLog2e, $0x3fb8aa3b) // 1.442695
CONST8(expLn2Hi, $0x3f318000) // 0.6933594
CONST8(expLn2Lo, $0xb95e8083) // -0.00021219444
CONST8(expC2, $0x3f000000)    // 1/2
CONST8(expC3, $0x3e2aaaab)    // 1/6
CONST8(expC4, $0x3d2aaaab)    // 1/24
CONST8(expC5, $0x3c088889)    // 1/120
CONST8(expC6, $0x3ab60b61)    // 1/720
CONST8(expC7, $0x39500d01)    // 1/5040
CONST8(expBias, $0x3f800000)  // 127<<23
CONST8(geluA, $0x3d372713)    // 0.044715
CONST8(geluM2K, $0xbfcc422a)  // -2*sqrt(2/pi)
CONST8(geluA3, $0x3e095d4f)   // 3*0.044715
CONST8(geluK2, $0x3fcc422a)   // 2*sqrt(2/pi)
CONST8(geluLo, $0xc1a00000)   // -20
CONST8(geluHi, $0x41a00000)   // 20
CONST8(one, $0x3f800000)      // 1
CONST8(negInf, $0xff800000)   // -Inf

// tailMask: 8 lanes of ones then 8 of zeros; the 8 lanes starting at
// element 8-r select the first r lanes.
DATA tailMask<>+0(SB)/4, $0xffffffff
DATA tailMask<>+4(SB)/4, $0xffffffff
DATA tailMask<>+8(SB)/4, $0xffffffff
DATA tailMask<>+12(SB)/4, $0xffffffff
DATA tailMask<>+16(SB)/4, $0xffffffff
DATA tailMask<>+20(SB)/4, $0xffffffff
DATA tailMask<>+24(SB)/4, $0xffffffff
DATA tailMask<>+28(SB)/4, $0xffffffff
DATA tailMask<>+32(SB)/4, $0
DATA tailMask<>+36(SB)/4, $0
DATA tailMask<>+40(SB)/4, $0
DATA tailMask<>+44(SB)/4, $0
DATA tailMask<>+48(SB)/4, $0
DATA tailMask<>+52(SB)/4, $0
DATA tailMask<>+56(SB)/4, $0
DATA tailMask<>+60(SB)/4, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $64

// TAILMASK loads into M the mask of the first n-i lanes (1..7); clobbers R
// and R12.
#define TAILMASK(n, i, R, M) \
	MOVQ    i, R; \
	SUBQ    n, R; \
	LEAQ    tailMask<>+32(SB), R12; \
	VMOVDQU (R12)(R*4), M

// EXP sets R = exp32(R) (see ops_math.go); T1..T5 are scratch. Lanes
// below expLo are cleared by the mask in T3 at the end, so only the upper
// clamp is needed (whatever those lanes compute is discarded).
#define EXP(R, T1, T2, T3, T4, T5) \
	VCMPPS    $1, expLo<>(SB), R, T3; \
	VMOVUPS   expHi<>(SB), T1; \
	VMINPS    R, T1, R; \
	VMULPS    expLog2e<>(SB), R, T1; \
	VROUNDPS  $0, T1, T1; \
	VMULPS    expLn2Hi<>(SB), T1, T2; \
	VMULPS    expLn2Lo<>(SB), T1, T4; \
	VSUBPS    T2, R, R; \
	VSUBPS    T4, R, R; \
	VCVTPS2DQ T1, T1; \
	VPSLLD    $23, T1, T1; \
	VPADDD    expBias<>(SB), T1, T1; \
	VMULPS    R, R, T2; \
	VMULPS    expC5<>(SB), R, T4; \
	VADDPS    expC4<>(SB), T4, T4; \
	VMULPS    expC7<>(SB), R, T5; \
	VADDPS    expC6<>(SB), T5, T5; \
	VMULPS    T2, T5, T5; \
	VADDPS    T4, T5, T5; \
	VMULPS    expC3<>(SB), R, T4; \
	VADDPS    expC2<>(SB), T4, T4; \
	VMULPS    T2, T5, T5; \
	VADDPS    T4, T5, T5; \
	VMULPS    T2, T5, T5; \
	VADDPS    R, T5, T5; \
	VADDPS    one<>(SB), T5, T5; \
	VMULPS    T1, T5, R; \
	VANDNPS   R, T3, R

// FOLD4 sets A0 = (A0+A1) + (A2+A3).
#define FOLD4(A0, A1, A2, A3) \
	VADDPS A1, A0, A0; \
	VADDPS A3, A2, A2; \
	VADDPS A2, A0, A0

// HSUM8 folds the 8 lanes of Y (low half X) into X's lane 0:
// (s0+s4, s1+s5, s2+s6, s3+s7), then pairs two apart, then the last two.
#define HSUM8(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS T, X, X; \
	VMOVHLPS X, X, T; \
	VADDPS T, X, X; \
	VMOVSHDUP X, T; \
	VADDSS T, X, X

// func addAVX2(out, a, b []float32)
TEXT ·addAVX2(SB), NOSPLIT, $0-72
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	MOVQ a_base+24(FP), SI
	MOVQ b_base+48(FP), DX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $~31, BX

add32:
	CMPQ AX, BX
	JAE  add8s
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y1
	VMOVUPS 64(SI)(AX*4), Y2
	VMOVUPS 96(SI)(AX*4), Y3
	VADDPS  (DX)(AX*4), Y0, Y0
	VADDPS  32(DX)(AX*4), Y1, Y1
	VADDPS  64(DX)(AX*4), Y2, Y2
	VADDPS  96(DX)(AX*4), Y3, Y3
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     add32

add8s:
	MOVQ CX, BX
	ANDQ $~7, BX

add8:
	CMPQ AX, BX
	JAE  addtail
	VMOVUPS (SI)(AX*4), Y0
	VADDPS  (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     add8

addtail:
	CMPQ AX, CX
	JAE  adddone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (DX)(AX*4), Y15, Y1
	VADDPS     Y1, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

adddone:
	VZEROUPPER
	RET

// func addToAVX2(dst, src []float32)
TEXT ·addToAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), CX
	MOVQ src_base+24(FP), SI
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $~31, BX

at32:
	CMPQ AX, BX
	JAE  at8s
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS 32(DI)(AX*4), Y1
	VMOVUPS 64(DI)(AX*4), Y2
	VMOVUPS 96(DI)(AX*4), Y3
	VADDPS  (SI)(AX*4), Y0, Y0
	VADDPS  32(SI)(AX*4), Y1, Y1
	VADDPS  64(SI)(AX*4), Y2, Y2
	VADDPS  96(SI)(AX*4), Y3, Y3
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     at32

at8s:
	MOVQ CX, BX
	ANDQ $~7, BX

at8:
	CMPQ AX, BX
	JAE  attail
	VMOVUPS (DI)(AX*4), Y0
	VADDPS  (SI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     at8

attail:
	CMPQ AX, CX
	JAE  atdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (DI)(AX*4), Y15, Y0
	VMASKMOVPS (SI)(AX*4), Y15, Y1
	VADDPS     Y1, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

atdone:
	VZEROUPPER
	RET

// func scaleAVX2(x []float32, s float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), DI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS s+24(FP), Y14
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

sc32:
	CMPQ AX, BX
	JAE  sc8s
	VMULPS  (DI)(AX*4), Y14, Y0
	VMULPS  32(DI)(AX*4), Y14, Y1
	VMULPS  64(DI)(AX*4), Y14, Y2
	VMULPS  96(DI)(AX*4), Y14, Y3
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     sc32

sc8s:
	MOVQ CX, BX
	ANDQ $~7, BX

sc8:
	CMPQ AX, BX
	JAE  sctail
	VMULPS  (DI)(AX*4), Y14, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     sc8

sctail:
	CMPQ AX, CX
	JAE  scdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (DI)(AX*4), Y15, Y0
	VMULPS     Y14, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

scdone:
	VZEROUPPER
	RET

// func fillAVX2(x []float32, v float32)
TEXT ·fillAVX2(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), DI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS v+24(FP), Y0
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

fi32:
	CMPQ AX, BX
	JAE  fi8s
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y0, 32(DI)(AX*4)
	VMOVUPS Y0, 64(DI)(AX*4)
	VMOVUPS Y0, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     fi32

fi8s:
	MOVQ CX, BX
	ANDQ $~7, BX

fi8:
	CMPQ AX, BX
	JAE  fitail
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     fi8

fitail:
	CMPQ AX, CX
	JAE  fidone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

fidone:
	VZEROUPPER
	RET

// func axpyAVX2(y, x []float32, a float32)
// y += x*a (product rounded, then added).
TEXT ·axpyAVX2(SB), NOSPLIT, $0-52
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	MOVQ         x_base+24(FP), SI
	VBROADCASTSS a+48(FP), Y14
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

ax32:
	CMPQ AX, BX
	JAE  ax8s
	VMULPS  (SI)(AX*4), Y14, Y0
	VMULPS  32(SI)(AX*4), Y14, Y1
	VMULPS  64(SI)(AX*4), Y14, Y2
	VMULPS  96(SI)(AX*4), Y14, Y3
	VADDPS  (DI)(AX*4), Y0, Y0
	VADDPS  32(DI)(AX*4), Y1, Y1
	VADDPS  64(DI)(AX*4), Y2, Y2
	VADDPS  96(DI)(AX*4), Y3, Y3
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     ax32

ax8s:
	MOVQ CX, BX
	ANDQ $~7, BX

ax8:
	CMPQ AX, BX
	JAE  axtail
	VMULPS  (SI)(AX*4), Y14, Y0
	VADDPS  (DI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     ax8

axtail:
	CMPQ AX, CX
	JAE  axdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (DI)(AX*4), Y15, Y1
	VMULPS     Y14, Y0, Y0
	VADDPS     Y1, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

axdone:
	VZEROUPPER
	RET

// func sumAVX2(x []float32) float32
TEXT ·sumAVX2(SB), NOSPLIT, $0-28
	MOVQ  x_base+0(FP), SI
	MOVQ  x_len+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ  AX, AX
	MOVQ  CX, BX
	ANDQ  $~31, BX

su32:
	CMPQ AX, BX
	JAE  su8s
	VADDPS (SI)(AX*4), Y0, Y0
	VADDPS 32(SI)(AX*4), Y1, Y1
	VADDPS 64(SI)(AX*4), Y2, Y2
	VADDPS 96(SI)(AX*4), Y3, Y3
	ADDQ   $32, AX
	JMP    su32

su8s:
	FOLD4(Y0, Y1, Y2, Y3)
	MOVQ CX, BX
	ANDQ $~7, BX

su8:
	CMPQ AX, BX
	JAE  suh
	VADDPS (SI)(AX*4), Y0, Y0
	ADDQ   $8, AX
	JMP    su8

suh:
	HSUM8(Y0, X0, X1)

sutail:
	CMPQ AX, CX
	JAE  sudone
	VADDSS (SI)(AX*4), X0, X0
	INCQ   AX
	JMP    sutail

sudone:
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func dotAVX2(a, b []float32) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-52
	MOVQ  a_base+0(FP), SI
	MOVQ  a_len+8(FP), CX
	MOVQ  b_base+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ  AX, AX
	MOVQ  CX, BX
	ANDQ  $~31, BX

do32:
	CMPQ AX, BX
	JAE  do8s
	VMOVUPS (SI)(AX*4), Y4
	VMOVUPS 32(SI)(AX*4), Y5
	VMOVUPS 64(SI)(AX*4), Y6
	VMOVUPS 96(SI)(AX*4), Y7
	VMULPS  (DX)(AX*4), Y4, Y4
	VMULPS  32(DX)(AX*4), Y5, Y5
	VMULPS  64(DX)(AX*4), Y6, Y6
	VMULPS  96(DX)(AX*4), Y7, Y7
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	ADDQ    $32, AX
	JMP     do32

do8s:
	FOLD4(Y0, Y1, Y2, Y3)
	MOVQ CX, BX
	ANDQ $~7, BX

do8:
	CMPQ AX, BX
	JAE  doh
	VMOVUPS (SI)(AX*4), Y4
	VMULPS  (DX)(AX*4), Y4, Y4
	VADDPS  Y4, Y0, Y0
	ADDQ    $8, AX
	JMP     do8

doh:
	HSUM8(Y0, X0, X1)

dotail:
	CMPQ AX, CX
	JAE  dodone
	VMOVSS (SI)(AX*4), X4
	VMULSS (DX)(AX*4), X4, X4
	VADDSS X4, X0, X0
	INCQ   AX
	JMP    dotail

dodone:
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func sumSqDevAVX2(x []float32, m float32) float32
// sum((x-m)^2), each square rounded, in the summation order.
TEXT ·sumSqDevAVX2(SB), NOSPLIT, $0-36
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

sq32:
	CMPQ AX, BX
	JAE  sq8s
	VMOVUPS (SI)(AX*4), Y4
	VMOVUPS 32(SI)(AX*4), Y5
	VMOVUPS 64(SI)(AX*4), Y6
	VMOVUPS 96(SI)(AX*4), Y7
	VSUBPS  Y15, Y4, Y4
	VSUBPS  Y15, Y5, Y5
	VSUBPS  Y15, Y6, Y6
	VSUBPS  Y15, Y7, Y7
	VMULPS  Y4, Y4, Y4
	VMULPS  Y5, Y5, Y5
	VMULPS  Y6, Y6, Y6
	VMULPS  Y7, Y7, Y7
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	ADDQ    $32, AX
	JMP     sq32

sq8s:
	FOLD4(Y0, Y1, Y2, Y3)
	MOVQ CX, BX
	ANDQ $~7, BX

sq8:
	CMPQ AX, BX
	JAE  sqh
	VMOVUPS (SI)(AX*4), Y4
	VSUBPS  Y15, Y4, Y4
	VMULPS  Y4, Y4, Y4
	VADDPS  Y4, Y0, Y0
	ADDQ    $8, AX
	JMP     sq8

sqh:
	HSUM8(Y0, X0, X1)

sqtail:
	CMPQ AX, CX
	JAE  sqdone
	VMOVSS (SI)(AX*4), X4
	VSUBSS X15, X4, X4
	VMULSS X4, X4, X4
	VADDSS X4, X0, X0
	INCQ   AX
	JMP    sqtail

sqdone:
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// func sumSquaresAVX2(x []float32) float64
// Squares in float64 (exact), 16 partial sums; order in sumSquares64.
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, BX
	ANDQ   $~15, BX

ss16:
	CMPQ AX, BX
	JAE  ss4s
	VCVTPS2PD (SI)(AX*4), Y4
	VCVTPS2PD 16(SI)(AX*4), Y5
	VCVTPS2PD 32(SI)(AX*4), Y6
	VCVTPS2PD 48(SI)(AX*4), Y7
	VMULPD    Y4, Y4, Y4
	VMULPD    Y5, Y5, Y5
	VMULPD    Y6, Y6, Y6
	VMULPD    Y7, Y7, Y7
	VADDPD    Y4, Y0, Y0
	VADDPD    Y5, Y1, Y1
	VADDPD    Y6, Y2, Y2
	VADDPD    Y7, Y3, Y3
	ADDQ      $16, AX
	JMP       ss16

ss4s:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	MOVQ   CX, BX
	ANDQ   $~3, BX

ss4:
	CMPQ AX, BX
	JAE  ssh
	VCVTPS2PD (SI)(AX*4), Y4
	VMULPD    Y4, Y4, Y4
	VADDPD    Y4, Y0, Y0
	ADDQ      $4, AX
	JMP       ss4

ssh:
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VPERMILPD    $1, X0, X1
	VADDSD       X1, X0, X0

sstail:
	CMPQ AX, CX
	JAE  ssdone
	VCVTSS2SD (SI)(AX*4), X4, X4
	VMULSD    X4, X4, X4
	VADDSD    X4, X0, X0
	INCQ      AX
	JMP       sstail

ssdone:
	VMOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func hasNaNAVX2(x []float32) bool
// x*0 is NaN exactly when x is NaN or infinite; the sums keep any NaN.
TEXT ·hasNaNAVX2(SB), NOSPLIT, $0-25
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y15, Y15, Y15
	XORQ   AX, AX
	MOVQ   CX, BX
	ANDQ   $~15, BX

hn16:
	CMPQ AX, BX
	JAE  hn1
	VMULPS (SI)(AX*4), Y15, Y4
	VMULPS 32(SI)(AX*4), Y15, Y5
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	ADDQ   $16, AX
	JMP    hn16

hn1:
	// The scalar tail sums into X2: a VEX scalar op on X0 would clear
	// the upper lanes of Y0.
	VXORPS X2, X2, X2

hn1loop:
	CMPQ AX, CX
	JAE  hndone
	VMULSS (SI)(AX*4), X15, X4
	VADDSS X4, X2, X2
	INCQ   AX
	JMP    hn1loop

hndone:
	VADDPS    Y1, Y0, Y0
	VADDPS    Y2, Y0, Y0
	VCMPPS    $3, Y0, Y0, Y0
	VMOVMSKPS Y0, AX
	TESTL     AX, AX
	SETNE     ret+24(FP)
	VZEROUPPER
	RET

// func lnApplyAVX2(out, x, w, b []float32, mean, rstd float32)
// out = float32((x-mean)*rstd)*w + b.
TEXT ·lnApplyAVX2(SB), NOSPLIT, $0-104
	MOVQ         out_base+0(FP), DI
	MOVQ         out_len+8(FP), CX
	MOVQ         x_base+24(FP), SI
	MOVQ         w_base+48(FP), R9
	MOVQ         b_base+72(FP), R10
	VBROADCASTSS mean+96(FP), Y14
	VBROADCASTSS rstd+100(FP), Y13
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~15, BX

la16:
	CMPQ AX, BX
	JAE  la8s
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y1
	VSUBPS  Y14, Y0, Y0
	VSUBPS  Y14, Y1, Y1
	VMULPS  Y13, Y0, Y0
	VMULPS  Y13, Y1, Y1
	VMULPS  (R9)(AX*4), Y0, Y0
	VMULPS  32(R9)(AX*4), Y1, Y1
	VADDPS  (R10)(AX*4), Y0, Y0
	VADDPS  32(R10)(AX*4), Y1, Y1
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	ADDQ    $16, AX
	JMP     la16

la8s:
	MOVQ CX, BX
	ANDQ $~7, BX

la8:
	CMPQ AX, BX
	JAE  latail
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  Y13, Y0, Y0
	VMULPS  (R9)(AX*4), Y0, Y0
	VADDPS  (R10)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     la8

latail:
	CMPQ AX, CX
	JAE  ladone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (R9)(AX*4), Y15, Y1
	VMASKMOVPS (R10)(AX*4), Y15, Y2
	VSUBPS     Y14, Y0, Y0
	VMULPS     Y13, Y0, Y0
	VMULPS     Y1, Y0, Y0
	VADDPS     Y2, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

ladone:
	VZEROUPPER
	RET

// LNBS accumulates into A1 += dn and A2 += dn*nv for the 8 elements at
// offset off, with nv = (x-mean)*rstd, dn = w*g; T1, T2 scratch.
#define LNBS(off, A1, A2, T1, T2) \
	VMOVUPS off(SI)(AX*4), T1; \
	VSUBPS  Y14, T1, T1; \
	VMULPS  Y15, T1, T1; \
	VMOVUPS off(R9)(AX*4), T2; \
	VMULPS  off(DX)(AX*4), T2, T2; \
	VADDPS  T2, A1, A1; \
	VMULPS  T1, T2, T2; \
	VADDPS  T2, A2, A2

// func lnBwdSumsAVX2(x, w, g []float32, mean, rstd float32) (float32, float32)
TEXT ·lnBwdSumsAVX2(SB), NOSPLIT, $0-88
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	MOVQ         w_base+24(FP), R9
	MOVQ         g_base+48(FP), DX
	VBROADCASTSS mean+72(FP), Y14
	VBROADCASTSS rstd+76(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

lb32:
	CMPQ AX, BX
	JAE  lb8s
	LNBS(0, Y0, Y4, Y8, Y9)
	LNBS(32, Y1, Y5, Y10, Y11)
	LNBS(64, Y2, Y6, Y12, Y13)
	LNBS(96, Y3, Y7, Y8, Y9)
	ADDQ $32, AX
	JMP  lb32

lb8s:
	FOLD4(Y0, Y1, Y2, Y3)
	FOLD4(Y4, Y5, Y6, Y7)
	MOVQ CX, BX
	ANDQ $~7, BX

lb8:
	CMPQ AX, BX
	JAE  lbh
	LNBS(0, Y0, Y4, Y8, Y9)
	ADDQ $8, AX
	JMP  lb8

lbh:
	HSUM8(Y0, X0, X1)
	HSUM8(Y4, X4, X5)

lbtail:
	CMPQ AX, CX
	JAE  lbdone
	VMOVSS (SI)(AX*4), X8
	VSUBSS X14, X8, X8
	VMULSS X15, X8, X8
	VMOVSS (R9)(AX*4), X9
	VMULSS (DX)(AX*4), X9, X9
	VADDSS X9, X0, X0
	VMULSS X8, X9, X9
	VADDSS X9, X4, X4
	INCQ   AX
	JMP    lbtail

lbdone:
	VMOVSS X0, ret+80(FP)
	VMOVSS X4, ret1+84(FP)
	VZEROUPPER
	RET

// LNBA computes into T1 the increment of dinp for 8 elements already loaded:
// X (x), W (w), G (g): ((w*g - dm) - ((x-mean)*rstd)*dnm) * rstd.
// Y14 mean, Y13 rstd, Y12 dm, Y11 dnm.
#define LNBA(X, W, G, T1) \
	VSUBPS Y14, X, X; \
	VMULPS Y13, X, X; \
	VMULPS G, W, T1; \
	VSUBPS Y12, T1, T1; \
	VMULPS Y11, X, X; \
	VSUBPS X, T1, T1; \
	VMULPS Y13, T1, T1

// func lnBwdApplyAVX2(dinp, x, w, g []float32, mean, rstd, dm, dnm float32)
TEXT ·lnBwdApplyAVX2(SB), NOSPLIT, $0-112
	MOVQ         dinp_base+0(FP), DI
	MOVQ         dinp_len+8(FP), CX
	MOVQ         x_base+24(FP), SI
	MOVQ         w_base+48(FP), R9
	MOVQ         g_base+72(FP), DX
	VBROADCASTSS mean+96(FP), Y14
	VBROADCASTSS rstd+100(FP), Y13
	VBROADCASTSS dm+104(FP), Y12
	VBROADCASTSS dnm+108(FP), Y11
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~7, BX

ba8:
	CMPQ AX, BX
	JAE  batail
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS (R9)(AX*4), Y1
	VMOVUPS (DX)(AX*4), Y2
	LNBA(Y0, Y1, Y2, Y3)
	VADDPS  (DI)(AX*4), Y3, Y3
	VMOVUPS Y3, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     ba8

batail:
	CMPQ AX, CX
	JAE  badone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (R9)(AX*4), Y15, Y1
	VMASKMOVPS (DX)(AX*4), Y15, Y2
	VMASKMOVPS (DI)(AX*4), Y15, Y4
	LNBA(Y0, Y1, Y2, Y3)
	VADDPS     Y4, Y3, Y3
	VMASKMOVPS Y3, Y15, (DI)(AX*4)

badone:
	VZEROUPPER
	RET

// func lnBwdParamsAVX2(dw, db, x, g []float32, mean, rstd float32)
// dw += float32((x-mean)*rstd)*g ; db += g (db skipped when empty).
TEXT ·lnBwdParamsAVX2(SB), NOSPLIT, $0-104
	MOVQ         dw_base+0(FP), DI
	MOVQ         dw_len+8(FP), CX
	MOVQ         db_base+24(FP), R10
	MOVQ         db_len+32(FP), R11
	MOVQ         x_base+48(FP), SI
	MOVQ         g_base+72(FP), DX
	VBROADCASTSS mean+96(FP), Y14
	VBROADCASTSS rstd+100(FP), Y13
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~7, BX

bp8:
	CMPQ AX, BX
	JAE  bptail
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS (DX)(AX*4), Y1
	VSUBPS  Y14, Y0, Y0
	VMULPS  Y13, Y0, Y0
	VMULPS  Y1, Y0, Y0
	VADDPS  (DI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	TESTQ   R11, R11
	JZ      bpnext
	VADDPS  (R10)(AX*4), Y1, Y1
	VMOVUPS Y1, (R10)(AX*4)

bpnext:
	ADDQ $8, AX
	JMP  bp8

bptail:
	CMPQ AX, CX
	JAE  bpdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (DX)(AX*4), Y15, Y1
	VMASKMOVPS (DI)(AX*4), Y15, Y2
	VSUBPS     Y14, Y0, Y0
	VMULPS     Y13, Y0, Y0
	VMULPS     Y1, Y0, Y0
	VADDPS     Y2, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)
	TESTQ      R11, R11
	JZ         bpdone
	VMASKMOVPS (R10)(AX*4), Y15, Y3
	VADDPS     Y3, Y1, Y1
	VMASKMOVPS Y1, Y15, (R10)(AX*4)

bpdone:
	VZEROUPPER
	RET

// func maxScaledAVX2(s []float32, scale float32) float32
// max of float32(scale*s[j]); len(s) >= 1.
TEXT ·maxScaledAVX2(SB), NOSPLIT, $0-36
	MOVQ         s_base+0(FP), SI
	MOVQ         s_len+8(FP), CX
	VBROADCASTSS scale+24(FP), Y14
	VMOVUPS      negInf<>(SB), Y0
	VMOVUPS      Y0, Y1
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~15, BX

mx16:
	CMPQ AX, BX
	JAE  mx8s
	VMULPS (SI)(AX*4), Y14, Y4
	VMULPS 32(SI)(AX*4), Y14, Y5
	VMAXPS Y4, Y0, Y0
	VMAXPS Y5, Y1, Y1
	ADDQ   $16, AX
	JMP    mx16

mx8s:
	VMAXPS Y1, Y0, Y0
	MOVQ   CX, BX
	ANDQ   $~7, BX

mx8:
	CMPQ AX, BX
	JAE  mxh
	VMULPS (SI)(AX*4), Y14, Y4
	VMAXPS Y4, Y0, Y0
	ADDQ   $8, AX
	JMP    mx8

mxh:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VMAXSS       X1, X0, X0

mxtail:
	CMPQ AX, CX
	JAE  mxdone
	VMULSS (SI)(AX*4), X14, X4
	VMAXSS X4, X0, X0
	INCQ   AX
	JMP    mxtail

mxdone:
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// ESS computes E = exp32(float32(scale*s) - mx) for the 8 scores at offset
// off, stores E to p and adds it to A; Y14 scale, Y15 mx.
#define ESS(off, A, E, T1, T2, T3, T4, T5) \
	VMULPS  off(SI)(AX*4), Y14, E; \
	VSUBPS  Y15, E, E; \
	EXP(E, T1, T2, T3, T4, T5); \
	VMOVUPS E, off(DI)(AX*4); \
	VADDPS  E, A, A

// func expSubSumAVX2(p, s []float32, scale, mx float32) float32
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-60
	MOVQ         p_base+0(FP), DI
	MOVQ         p_len+8(FP), CX
	MOVQ         s_base+24(FP), SI
	VBROADCASTSS scale+48(FP), Y14
	VBROADCASTSS mx+52(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~31, BX

es32:
	CMPQ AX, BX
	JAE  es8s
	ESS(0, Y0, Y4, Y5, Y6, Y7, Y8, Y9)
	ESS(32, Y1, Y4, Y5, Y6, Y7, Y8, Y9)
	ESS(64, Y2, Y4, Y5, Y6, Y7, Y8, Y9)
	ESS(96, Y3, Y4, Y5, Y6, Y7, Y8, Y9)
	ADDQ $32, AX
	JMP  es32

es8s:
	FOLD4(Y0, Y1, Y2, Y3)
	MOVQ CX, BX
	ANDQ $~7, BX

es8:
	CMPQ AX, BX
	JAE  esh
	ESS(0, Y0, Y4, Y5, Y6, Y7, Y8, Y9)
	ADDQ $8, AX
	JMP  es8

esh:
	HSUM8(Y0, X0, X1)
	CMPQ AX, CX
	JAE  esdone

	// Tail: one masked vector of exps, stored, then added in order.
	TAILMASK(CX, AX, R8, Y13)
	VMASKMOVPS (SI)(AX*4), Y13, Y4
	VMULPS     Y14, Y4, Y4
	VSUBPS     Y15, Y4, Y4
	EXP(Y4, Y5, Y6, Y7, Y8, Y9)
	VMASKMOVPS Y4, Y13, (DI)(AX*4)

estail:
	CMPQ AX, CX
	JAE  esdone
	VADDSS (DI)(AX*4), X0, X0
	INCQ   AX
	JMP    estail

esdone:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// func softmaxBwdAVX2(ds, p, dp []float32, dot, scale float32)
// ds += float32(scale * float32(p * (dp - dot))).
TEXT ·softmaxBwdAVX2(SB), NOSPLIT, $0-80
	MOVQ         ds_base+0(FP), DI
	MOVQ         ds_len+8(FP), CX
	MOVQ         p_base+24(FP), SI
	MOVQ         dp_base+48(FP), DX
	VBROADCASTSS dot+72(FP), Y14
	VBROADCASTSS scale+76(FP), Y13
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~15, BX

sb16:
	CMPQ AX, BX
	JAE  sb8s
	VMOVUPS (DX)(AX*4), Y0
	VMOVUPS 32(DX)(AX*4), Y1
	VSUBPS  Y14, Y0, Y0
	VSUBPS  Y14, Y1, Y1
	VMULPS  (SI)(AX*4), Y0, Y0
	VMULPS  32(SI)(AX*4), Y1, Y1
	VMULPS  Y13, Y0, Y0
	VMULPS  Y13, Y1, Y1
	VADDPS  (DI)(AX*4), Y0, Y0
	VADDPS  32(DI)(AX*4), Y1, Y1
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	ADDQ    $16, AX
	JMP     sb16

sb8s:
	MOVQ CX, BX
	ANDQ $~7, BX

sb8:
	CMPQ AX, BX
	JAE  sbtail
	VMOVUPS (DX)(AX*4), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  (SI)(AX*4), Y0, Y0
	VMULPS  Y13, Y0, Y0
	VADDPS  (DI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     sb8

sbtail:
	CMPQ AX, CX
	JAE  sbdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (DX)(AX*4), Y15, Y0
	VMASKMOVPS (SI)(AX*4), Y15, Y1
	VMASKMOVPS (DI)(AX*4), Y15, Y2
	VSUBPS     Y14, Y0, Y0
	VMULPS     Y1, Y0, Y0
	VMULPS     Y13, Y0, Y0
	VADDPS     Y2, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

sbdone:
	VZEROUPPER
	RET

// GELUF sets X = gelu32(X); T1..T5 scratch. The max keeps NaN (second
// operand) as gelu32's comparison does.
#define GELUF(X, T1, T2, T3, T4, T5, T6) \
	VMOVUPS geluLo<>(SB), T1; \
	VMAXPS X, T1, X; \
	VMULPS X, X, T1; \
	VMULPS X, T1, T1; \
	VMULPS geluA<>(SB), T1, T1; \
	VADDPS T1, X, T1; \
	VMULPS geluM2K<>(SB), T1, T1; \
	EXP(T1, T2, T3, T4, T5, T6); \
	VADDPS one<>(SB), T1, T1; \
	VDIVPS T1, X, X

// func geluAVX2(out, inp []float32)
TEXT ·geluAVX2(SB), NOSPLIT, $0-48
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	MOVQ inp_base+24(FP), SI
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $~15, BX

ge16:
	CMPQ AX, BX
	JAE  ge8s
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y8
	GELUF(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	GELUF(Y8, Y9, Y10, Y11, Y12, Y13, Y14)
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y8, 32(DI)(AX*4)
	ADDQ    $16, AX
	JMP     ge16

ge8s:
	MOVQ CX, BX
	ANDQ $~7, BX

ge8:
	CMPQ AX, BX
	JAE  getail
	VMOVUPS (SI)(AX*4), Y0
	GELUF(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     ge8

getail:
	CMPQ AX, CX
	JAE  gedone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	GELUF(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

gedone:
	VZEROUPPER
	RET

// GELUB sets X = geluGrad32(X); T1..T5 scratch. Order as in geluGrad32:
// clamp x to [-20, 20], x2, x3, in, e; s = 1/(1+e); du = K2*(1+A3*x2); q = ((e*s)*s)*du*x; s+q.
#define GELUB(X, T1, T2, T3, T4, T5, T6, T7) \
	VMOVUPS geluLo<>(SB), T1; \
	VMAXPS X, T1, X; \
	VMOVUPS geluHi<>(SB), T1; \
	VMINPS X, T1, X; \
	VMULPS X, X, T1; \
	VMULPS X, T1, T2; \
	VMULPS geluA<>(SB), T2, T2; \
	VADDPS T2, X, T2; \
	VMULPS geluM2K<>(SB), T2, T2; \
	EXP(T2, T3, T4, T5, T6, T7); \
	VADDPS one<>(SB), T2, T3; \
	VMOVUPS one<>(SB), T4; \
	VDIVPS T3, T4, T3; \
	VMULPS geluA3<>(SB), T1, T1; \
	VADDPS one<>(SB), T1, T1; \
	VMULPS geluK2<>(SB), T1, T1; \
	VMULPS T3, T2, T2; \
	VMULPS T3, T2, T2; \
	VMULPS T1, T2, T2; \
	VMULPS X, T2, T2; \
	VADDPS T2, T3, X

// func geluBwdAVX2(dinp, inp, dout []float32)
TEXT ·geluBwdAVX2(SB), NOSPLIT, $0-72
	MOVQ dinp_base+0(FP), DI
	MOVQ dinp_len+8(FP), CX
	MOVQ inp_base+24(FP), SI
	MOVQ dout_base+48(FP), DX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $~15, BX

gb16:
	CMPQ AX, BX
	JAE  gb8s
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y8
	GELUB(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	GELUB(Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15)
	VMULPS  (DX)(AX*4), Y0, Y0
	VMULPS  32(DX)(AX*4), Y8, Y8
	VADDPS  (DI)(AX*4), Y0, Y0
	VADDPS  32(DI)(AX*4), Y8, Y8
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y8, 32(DI)(AX*4)
	ADDQ    $16, AX
	JMP     gb16

gb8s:
	MOVQ CX, BX
	ANDQ $~7, BX

gb8:
	CMPQ AX, BX
	JAE  gbtail
	VMOVUPS (SI)(AX*4), Y0
	GELUB(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMULPS  (DX)(AX*4), Y0, Y0
	VADDPS  (DI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     gb8

gbtail:
	CMPQ AX, CX
	JAE  gbdone
	TAILMASK(CX, AX, R8, Y15)
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	GELUB(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMASKMOVPS (DX)(AX*4), Y15, Y8
	VMASKMOVPS (DI)(AX*4), Y15, Y9
	VMULPS     Y8, Y0, Y0
	VADDPS     Y9, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

gbdone:
	VZEROUPPER
	RET

// ADAM updates 8 elements held in P (p), G (g), M (m), V (v) in place:
// M, V the new moments, P the new parameters. T1, T2 scratch.
// Y7 lr, Y8 b1, Y9 b2, Y10 c1, Y11 c2, Y12 ibc1, Y13 ibc2, Y14 eps, Y15 wd.
#define ADAM(P, G, M, V, T1, T2) \
	VMULPS Y8, M, M; \
	VMULPS G, Y10, T1; \
	VADDPS T1, M, M; \
	VMULPS Y9, V, V; \
	VMULPS G, Y11, T1; \
	VMULPS G, T1, T1; \
	VADDPS T1, V, V; \
	VMULPS Y12, M, T1; \
	VMULPS Y13, V, T2; \
	VSQRTPS T2, T2; \
	VADDPS Y14, T2, T2; \
	VDIVPS T2, T1, T1; \
	VMULPS P, Y15, T2; \
	VADDPS T2, T1, T1; \
	VMULPS T1, Y7, T1; \
	VSUBPS T1, P, P

// func adamwAVX2(p, g, m, v []float32, a *adamParams)
TEXT ·adamwAVX2(SB), NOSPLIT, $0-104
	MOVQ         p_base+0(FP), DI
	MOVQ         p_len+8(FP), CX
	MOVQ         g_base+24(FP), SI
	MOVQ         m_base+48(FP), R9
	MOVQ         v_base+72(FP), R10
	MOVQ         a+96(FP), R11
	VBROADCASTSS 0(R11), Y7
	VBROADCASTSS 4(R11), Y8
	VBROADCASTSS 8(R11), Y9
	VBROADCASTSS 12(R11), Y10
	VBROADCASTSS 16(R11), Y11
	VBROADCASTSS 20(R11), Y12
	VBROADCASTSS 24(R11), Y13
	VBROADCASTSS 28(R11), Y14
	VBROADCASTSS 32(R11), Y15
	XORQ         AX, AX
	MOVQ         CX, BX
	ANDQ         $~7, BX

ad8:
	CMPQ AX, BX
	JAE  adtail
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS (SI)(AX*4), Y1
	VMOVUPS (R9)(AX*4), Y2
	VMOVUPS (R10)(AX*4), Y3
	ADAM(Y0, Y1, Y2, Y3, Y4, Y5)
	VMOVUPS Y2, (R9)(AX*4)
	VMOVUPS Y3, (R10)(AX*4)
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     ad8

adtail:
	CMPQ AX, CX
	JAE  addone
	TAILMASK(CX, AX, R8, Y6)
	VMASKMOVPS (DI)(AX*4), Y6, Y0
	VMASKMOVPS (SI)(AX*4), Y6, Y1
	VMASKMOVPS (R9)(AX*4), Y6, Y2
	VMASKMOVPS (R10)(AX*4), Y6, Y3
	ADAM(Y0, Y1, Y2, Y3, Y4, Y5)
	VMASKMOVPS Y2, Y6, (R9)(AX*4)
	VMASKMOVPS Y3, Y6, (R10)(AX*4)
	VMASKMOVPS Y0, Y6, (DI)(AX*4)

addone:
	VZEROUPPER
	RET
